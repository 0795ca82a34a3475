package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chromium finds Debian's headless-capable Chromium, installing the
// chromium package when it is missing and the process is root (the way
// internal/pgtest installs PostgreSQL). The search happens once.
var chromium = sync.OnceValues(func() (string, error) {
	if path, err := osexec.LookPath("chromium"); err == nil {
		return path, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("chromium not found: install it (Debian/Ubuntu: apt-get install -y chromium)")
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "chromium"}} {
		cmd := osexec.Command(args[0], args[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("chromium not found, and %s failed: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return osexec.LookPath("chromium")
})

// needChromium returns Chromium's path; without it the test fails, since a
// skipped test would prove nothing.
func needChromium(t *testing.T) string {
	t.Helper()
	path, err := chromium()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// runChromium loads url in a fresh headless Chromium with args added and
// returns its standard output. The virtual time budget lets the page's
// navigations (a form post, a redirect) finish before Chromium dumps or
// shoots the page.
func runChromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	profile := t.TempDir()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--virtual-time-budget=10000",
	}, append(args, url)...)
	cmd := osexec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	// Chromium starts helper processes; on timeout end them all, not only
	// the browser.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.Bytes())
	}
	return stdout.String()
}

// visibleText is the text of a page's body as a browser shows it, roughly:
// tags dropped, entities decoded, white space collapsed.
func visibleText(dom string) string {
	if _, body, ok := strings.Cut(dom, "<body>"); ok {
		dom = body
	}
	dom = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(dom, " ")
	return strings.Join(strings.Fields(html.UnescapeString(dom)), " ")
}

// TestStatusPageInBrowser logs in to the status page in headless Chromium
// as an operator would (the login form, then the page) and checks what the
// browser shows, with one of the two shards stopped. Set
// SHARDGATE_SCREENSHOT_DIR to keep its screenshots (wide and narrow) there
// for a look.
func TestStatusPageInBrowser(t *testing.T) {
	bin := needChromium(t)
	const token = "browser-test-token"
	f := startStatusFixture(t, token)
	if err := f.shards[1].Stop(); err != nil {
		t.Fatal(err)
	}

	// Chromium cannot send a header from its command line, so a page of
	// the same site submits the login form for it, as an operator would.
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><form method="post" action="%s/login"><input name="token" value="%s"></form>
<script>document.forms[0].submit()</script>`, html.EscapeString(f.admin.URL), html.EscapeString(token))
	}))
	defer login.Close()

	text := visibleText(runChromium(t, bin, login.URL, "--dump-dom"))
	if strings.Contains(text, "Admin token needed") {
		t.Fatalf("Chromium stayed on the login page:\n%s", text)
	}
	port := func(i int) string { return strconv.Itoa(f.shards[i].Port) }
	mustContain(t, "the page in Chromium", text,
		"shardgate gw-<b>1</b>", // the id as text, not markup
		"Shards Shard State Primary Notes s0 up postgres://postgres@127.0.0.1:"+port(0),
		"s1 down postgres://postgres@127.0.0.1:"+port(1),
		"shard s1 is down: ",
		"Keyspaces app sharded", "0–7 s0", "8–15 s1",
		"Backend pools Shard Role Open In use Idle Max Waiting Acquires Avg wait s0 postgres superuser",
		"Statements broadcast 1")

	dir := os.Getenv("SHARDGATE_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, size := range []struct {
		name          string
		width, height int
	}{{"wide", 1280, 900}, {"narrow", 390, 844}} {
		file := filepath.Join(dir, "status-"+size.name+".png")
		runChromium(t, bin, login.URL, "--run-all-compositor-stages-before-draw", "--screenshot="+file, fmt.Sprintf("--window-size=%d,%d", size.width, size.height))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		if got := img.Bounds().Size(); got.X != size.width || got.Y != size.height {
			t.Errorf("screenshot %s is %v, want %dx%d", file, got, size.width, size.height)
		}
		t.Logf("screenshot: %s", file)
	}
}
