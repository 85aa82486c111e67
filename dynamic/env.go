package dynamic

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/graft-host/graft/dynamic/sdk/wire"
)

// hostEnv are the variables a plugin gets from the host's environment
// without asking: what a program needs to find commands, its home, its
// language and its time zone. Nothing else of the host's environment
// (credentials, GRAFT_SOCKET...) reaches a plugin unless its config names
// it.
func hostEnv() [4]string { return [...]string{"PATH", "HOME", "LANG", "TZ"} }

// defaultPath is the plugin's PATH when the host has none (systemd's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CheckEnv checks one entry of a behaviour's env: "KEY=value" sets KEY,
// a bare "KEY" passes the host's KEY on (if it has one). KEY must be a
// shell-style name and not one graft or go-plugin sets.
func CheckEnv(entry string) error {
	key, _, _ := strings.Cut(entry, "=")
	if key == "" {
		return fmt.Errorf("%q has no variable name (write KEY=value, or KEY to pass the core's own value on)", entry)
	}
	for i, c := range key {
		letter := c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
		if digit := c >= '0' && c <= '9'; !letter && (i == 0 || !digit) {
			return fmt.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", key)
		}
	}
	if wire.Reserved(key) {
		return fmt.Errorf("%s is set by graft for its plugins and cannot be configured", key)
	}
	return nil
}

// pluginEnv is a plugin's whole environment: PATH, HOME, LANG and TZ from
// the host, then the behaviour's configured env (a bare KEY takes the
// host's value), then go-plugin's handshake variables and graft's own,
// which win over anything before them.
func pluginEnv(goPlugin, configured, graft []string) []string {
	env := make([]string, 0, 4+len(configured)+len(goPlugin)+len(graft))
	for _, k := range hostEnv() {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		} else if k == "PATH" {
			env = append(env, "PATH="+defaultPath)
		}
	}
	for _, e := range configured {
		key, _, set := strings.Cut(e, "=")
		if CheckEnv(e) != nil {
			continue // refused by the config already; never override graft's own
		}
		if !set {
			v, ok := os.LookupEnv(key)
			if !ok {
				continue
			}
			e = key + "=" + v
		}
		env = slices.DeleteFunc(env, func(x string) bool { return strings.HasPrefix(x, key+"=") })
		env = append(env, e)
	}
	return append(append(env, goPlugin...), graft...)
}
