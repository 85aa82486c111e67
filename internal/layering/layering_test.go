// Package layering checks the import rules of ../shared/DESIGN.md, like
// pebble's TestForbiddenImports: imports point one way, down. A new arrow
// that breaks a rule fails this test, naming the rule.
package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/graft-host/graft"

// rule is one layering rule: packages matching from may import, of graft's
// own packages, only those that allowed accepts.
type rule struct {
	name    string
	from    func(pkg string) bool
	allowed func(imp string) bool
	tests   bool // also check the package's test imports
}

func under(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			full := mod + "/" + pre
			if p == full || strings.HasPrefix(p, full+"/") {
				return true
			}
		}
		return false
	}
}

func not(f func(string) bool) func(string) bool { return func(p string) bool { return !f(p) } }

var rules = []rule{
	{"mailbox imports no other graft package", under("mailbox"), under("mailbox"), false},
	{"dynamic imports no other graft package (the SDK module is part of it)", under("dynamic"), under("dynamic"), false},
	{"the SDK imports nothing of the core", under("dynamic/sdk"), under("dynamic/sdk"), true},
	{"core never imports upgrade or cmd", under("core"), not(under("upgrade", "cmd")), false},
	{"upgrade never imports cmd", under("upgrade"), not(under("cmd")), false},
	{"examples use the SDK alone, tests included", under("examples"), under("dynamic/sdk"), true},
	{"only cmd imports host: the whole core is wired in one place", not(under("cmd", "host")), not(under("host")), false},
	{"core, mailbox, dynamic and upgrade never import config or host: the wiring sits above them",
		under("core", "mailbox", "dynamic", "upgrade"), not(under("config", "host")), false},
	{"config never imports host, upgrade or cmd", under("config"), not(under("host", "upgrade", "cmd")), false},
}

// depRule is a rule on everything a package links: its transitive
// dependencies (go list -deps), not only its direct imports, because a
// package can drag go-plugin in through any graft package it imports.
type depRule struct {
	name      string
	pkg       string
	forbidden func(dep string) bool
}

// linksTheCore says whether dep is go-plugin, gRPC, or a graft package of
// the core, the plugin host or the store.
func linksTheCore(self string) func(string) bool {
	return func(dep string) bool {
		if dep == self {
			return false
		}
		for _, p := range []string{"github.com/hashicorp/go-plugin", "google.golang.org/grpc"} {
			if dep == p || strings.HasPrefix(dep, p+"/") {
				return true
			}
		}
		return under("core", "dynamic", "mailbox")(dep)
	}
}

var depRules = []depRule{
	{"the control client (core/control/api) links no core, dynamic, mailbox, go-plugin or gRPC, even transitively",
		mod + "/core/control/api", linksTheCore(mod + "/core/control/api")},
}

// TestLinkedDependencies checks depRules against go list -deps.
func TestLinkedDependencies(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, r := range depRules {
		cmd := exec.Command("go", "list", "-deps", r.pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", r.pkg, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, "net/http") || !slices.Contains(deps, r.pkg) {
			t.Fatalf("go list -deps %s lists %d packages, without net/http or itself: the test is not looking at it", r.pkg, len(deps))
		}
		for _, d := range deps {
			if r.forbidden(d) {
				t.Errorf("%s links %s: breaks the rule %q", r.pkg, d, r.name)
			}
		}
	}
}

// pkgImports lists, for every package of the module in dir, its imports of
// graft packages (with or without its tests' imports).
func pkgImports(t *testing.T, dir string) (plain, withTests map[string][]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v", dir, err)
	}
	plain, withTests = map[string][]string{}, map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 {
			continue
		}
		own := func(list string) []string {
			var out []string
			for _, imp := range strings.Fields(list) {
				if strings.HasPrefix(imp, mod+"/") || imp == mod {
					out = append(out, imp)
				}
			}
			return out
		}
		plain[parts[0]] = own(parts[1])
		withTests[parts[0]] = append(own(parts[1]), own(parts[2])...)
	}
	return plain, withTests
}

func TestLayering(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	plain, withTests := pkgImports(t, root)
	sdkPlain, sdkTests := pkgImports(t, filepath.Join(root, "dynamic", "sdk"))
	for k, v := range sdkPlain {
		plain[k] = v
	}
	for k, v := range sdkTests {
		withTests[k] = v
	}
	if len(plain) < 20 {
		t.Fatalf("go list found only %d packages: the test is not looking at the module", len(plain))
	}
	checked := 0
	for _, r := range rules {
		imports := plain
		if r.tests {
			imports = withTests
		}
		for pkg, imps := range imports {
			if !r.from(pkg) {
				continue
			}
			checked++
			for _, imp := range imps {
				if !r.allowed(imp) {
					t.Errorf("%s imports %s: breaks the rule %q", pkg, imp, r.name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule")
	}
}
