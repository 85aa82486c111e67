package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/graft-host/graft/internal/testbin"
)

// chromium is the headless browser the web view's test drives: Debian's
// chromium, installed by scripts/install-deps.sh.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: the web view's test drives a real browser; run scripts/install-deps.sh (apt-get install chromium)")
	return ""
}

// webCore is a core with the recorder actors a and b and the kv actors
// k0 and k1 (on a copy of kv v1), serving the web view with token.
func webCore(t *testing.T, token string) (*coreProc, string) {
	dir, src := kvSource(t)
	path := filepath.Join(dir, "graft.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`store: {path: ./data}
control: {dir: ./run}
limits: {max_attempts: 2}
behaviours:
  recorder: {binary: %s, verify_window: 4}
  kv: {binary: %s}
actors:
  - {name: a, behaviour: recorder}
  - {name: b, behaviour: recorder}
  - {name: k0, behaviour: kv}
  - {name: k1, behaviour: kv}
`, plugin("recorder"), src)), 0o644))
	p := startGraftAt(t, path, []string{"a", "b", "k0", "k1"}, "--http", "127.0.0.1:0", "--http-token", token)
	var addr string
	testbin.WaitFor(t, 10*time.Second, "the web view's address in the log", func() bool {
		if l := p.logLine("serving the web view: open this address and add #token=YOUR_TOKEN for changes"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != ""
	})
	return p, "http://" + addr
}

// The web view in a real browser: it finds the actors; a canary started
// from the CLI shows on the upgrades page and is promoted with its button;
// the versions change on the page without a reload; a dead letter is
// retried with its button; a change without the token, or from another
// site, is refused.
func TestWebViewInABrowser(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	p, base := webCore(t, token)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelA := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	shots := os.Getenv("GRAFT_WEB_SCREENSHOTS") // a folder: write a screenshot of each page there
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if shots == "" {
				return nil
			}
			png, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, "web-"+name+".png"), png, 0o644)
		})
	}
	eval := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](js)(ctx, tg)
			return err
		})
	}
	go_ := func(hash string) chromedp.Action[chromedp.Void] { return eval(`location.hash = "` + hash + `"`) }
	poll := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(30*time.Second))(ctx, tg)
			return err
		})
	}

	// The actors are there; a marker shows later that the page never reloaded.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(base+"/#token="+token),
		chromedp.WaitVisible(`tr[data-actor="a"]`),
		chromedp.WaitVisible(`tr[data-actor="k1"]`),
		eval(`window.graftMarker = 42`),
		shot("actors"),
	))

	// A canary from the CLI, promoted from the page.
	var stderr testbin.Buffer
	wait := p.background(t, &stderr, "upgrade", "kv", "--binary", plugin("kv2"), "--canary", "k0", "--bake", "1h")
	require.NoError(t, chromedp.Do(bctx,
		go_("#/upgrades"),
		chromedp.WaitVisible(`#promote`),
		poll(`document.querySelector('#upgrades .phase').textContent === "baking"`),
		chromedp.WaitVisible(`#upgrades table.health`),
		shot("upgrades"),
		eval(`document.querySelector('#promote').click()`),
	))
	r := wait()
	require.Equal(t, 0, r.code, "the promoted canary's command: %s", r.stderr)
	assert.Contains(t, r.stdout, "promoted by an operator")

	// The new versions show up without a reload.
	require.NoError(t, chromedp.Do(bctx,
		go_("#/actors"),
		poll(`document.querySelector('tr[data-actor="k0"] td.module').textContent === "2.0.0" &&
			document.querySelector('tr[data-actor="k1"] td.module').textContent === "2.0.0"`),
		go_("#/behaviours"), chromedp.WaitVisible(`tr[data-behaviour="kv"]`), shot("behaviours"),
		go_("#/history"), chromedp.WaitVisible(`#history`), shot("history"),
		go_("#/upgrades"), chromedp.WaitVisible(`#last-upgrade`),
		poll(`document.querySelector('#last-upgrade').textContent.includes("2 actors moved")`),
	))
	marker, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.graftMarker`))
	require.NoError(t, err)
	assert.Equal(t, 42, marker, "the page was not reloaded")

	// Actor b's rate shows while it is busy.
	for i := range 20 {
		p.ok(t, "send", "b", fmt.Sprintf("burst-%d", i))
	}
	require.NoError(t, chromedp.Do(bctx,
		go_("#/actors"),
		poll(`parseFloat(document.querySelector('tr[data-actor="b"] td.rate').textContent) > 0`),
	))

	// A dead letter, retried with its button.
	assert.Equal(t, "ok:hello", p.ok(t, "call", "a", "hello"))
	p.ok(t, "send", "a", "error")
	testbin.WaitFor(t, 30*time.Second, "a's dead letter", func() bool { return p.status(t)["a"].DeadLetters == 1 })
	require.NoError(t, chromedp.Do(bctx,
		go_("#/actor/a"),
		chromedp.WaitVisible(`#deadletters button.retry`),
		poll(`[...document.querySelectorAll('#handled tr')].some((r) => r.textContent.includes("hello") && r.textContent.includes("ok:hello"))`),
		shot("actor"),
		eval(`document.querySelector('#deadletters button.retry').click()`),
		poll(`document.querySelector('#notice').textContent.startsWith("retried")`),
	))
	note, err := chromedp.Run(bctx, chromedp.TextContent(`#notice`))
	require.NoError(t, err)
	assert.Equal(t, "retried 1 message(s) of a", note)

	// Stop and start from the actor's page.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.WaitVisible(`#stop`),
		eval(`document.querySelector('#stop').click()`),
	))
	testbin.WaitFor(t, 30*time.Second, "a stopped from the page", func() bool { return p.status(t)["a"].Status == "stopped" })
	p.ok(t, "send", "a", "while-stopped")
	// A large payload shows its first bytes and its size, a binary one
	// its size alone.
	big := "big-" + strings.Repeat("x", 4000)
	require.Equal(t, 0, graft(t, big, nil, "send", "a", "-", "--config", p.config).code)
	require.Equal(t, 0, graft(t, "\x00\x01\x02", nil, "send", "a", "-", "--config", p.config).code)
	require.NoError(t, chromedp.Do(bctx,
		poll(`document.querySelector('#queued').textContent.includes("while-stopped")`),
		poll(`[...document.querySelectorAll('#queued tr')].some((r) => r.textContent.includes("big-xxx") && r.textContent.includes("… (4004 bytes)"))`),
		poll(`[...document.querySelectorAll('#queued tr')].some((r) => r.textContent.includes("(3 bytes)"))`),
		chromedp.WaitVisible(`#start`),
		eval(`document.querySelector('#start').click()`),
	))
	testbin.WaitFor(t, 30*time.Second, "a started from the page", func() bool { return p.status(t)["a"].Status == "running" })

	// An actor the core does not know is one error on its page; one named
	// "..", which a browser takes out of URLs, has its page like any other.
	require.NoError(t, chromedp.Do(bctx,
		go_("#/actor/nosuch"),
		poll(`(document.querySelector('#error') || {textContent: ""}).textContent.includes("nosuch") && !document.querySelector('#queued')`),
	))
	p.ok(t, "spawn", "..", "--behaviour", "recorder")
	assert.Equal(t, "ok:dots", p.ok(t, "call", "..", "dots"))
	require.NoError(t, chromedp.Do(bctx,
		go_("#/actor/.."),
		poll(`[...document.querySelectorAll('#handled tr')].some((r) => r.textContent.includes("ok:dots"))`),
		poll(`!document.querySelector('#error') && !document.querySelector('#state').textContent.includes("no endpoint")`),
	))

	// Without the token, or from another site, a change is refused; a
	// read on loopback is not.
	post := func(hdr map[string]string) int {
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/actors/a/deadletters/retry", strings.NewReader(`{"all":true}`))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	var resp *http.Response
	assert.Equal(t, http.StatusUnauthorized, post(nil), "no token")
	assert.Equal(t, http.StatusUnauthorized, post(map[string]string{"X-Graft-Token": "wrong"}), "a wrong token")
	assert.Equal(t, http.StatusForbidden, post(map[string]string{"X-Graft-Token": token, "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}), "from another site")
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/status", nil)
	require.NoError(t, err)
	req.Host = "evil.example:80" // a name rebound to 127.0.0.1
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, "DNS rebinding: another host name on loopback")
	req, err = http.NewRequest(http.MethodPost, base+"/api/v1/actors/a/destroy", nil)
	require.NoError(t, err)
	req.Header.Set("X-Graft-Token", token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "destroy is not offered by the web view, token or not")
	assert.NotContains(t, p.logs.String(), token, "the operator's token is not logged")
	resp, err = http.Get(base + "/api/v1/status")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a read on loopback needs no token")
}
