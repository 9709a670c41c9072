// Command screenshots takes the README's screenshots of the dashboard
// from a running demo, so they show what a new user sees (the demo's
// fleet with a week of past, not a test's three meters):
//
//	go run ./cmd/flows demo --ready-file /tmp/flows.json &
//	go run ./internal/tools/screenshots --ready-file /tmp/flows.json --out docs/screenshots
//
// It logs in with the ready-file's admin token in Debian's chromium
// (driven by chromedp, as the browser tests do) and writes fleet.png,
// meter.png, intervals.png, attention.png, self-disconnections.png and
// phone.png. Run it after changing a page; the README's walkthrough shows
// them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

func main() {
	ready := flag.String("ready-file", "/tmp/flows.json", "the demo's ready-file")
	out := flag.String("out", "docs/screenshots", "directory to write the PNGs into")
	serial := flag.String("serial", "EML2200001001", "the meter to show (the demo's first twin-element meter)")
	browser := flag.String("chromium", "/usr/bin/chromium", "the browser")
	flag.Parse()
	if err := run(*ready, *out, *serial, *browser); err != nil {
		fmt.Fprintln(os.Stderr, "screenshots:", err)
		os.Exit(1)
	}
}

func run(readyPath, out, serial, browser string) error {
	b, err := os.ReadFile(readyPath)
	if err != nil {
		return err
	}
	var rf struct {
		HTTPURL    string `json:"http_url"`
		AdminToken string `json:"admin_token"`
	}
	if err := json.Unmarshal(b, &rf); err != nil || rf.HTTPURL == "" || rf.AdminToken == "" {
		return fmt.Errorf("%s: not a demo ready-file with http_url and admin_token (%v)", readyPath, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "flows-screenshots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	base := rf.HTTPURL
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SetValue(chromedp.CSS("#token"), rf.AdminToken)); err != nil {
		return fmt.Errorf("login page: %w", err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#login-btn"))); err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	save := func(name string, shot chromedp.Action[[]byte]) error {
		png, err := chromedp.Run(ctx, shot)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Println("wrote", filepath.Join(out, name))
		return os.WriteFile(filepath.Join(out, name), png, 0o644)
	}
	// What a laptop's screen shows of each page (1,280 × 1,000): the
	// top of a long page is what a reader needs to recognise it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1000)); err != nil {
		return err
	}
	for _, p := range []struct{ name, path, wait string }{
		{"fleet.png", "/", "a.meter-link"},
		{"meter.png", "/meters/" + serial, "#balance-chart canvas"},
		{"attention.png", "/views", "#low-balance"},
		{"self-disconnections.png", "/reports/self-disconnections", "#report-summary"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait))); err != nil {
			return fmt.Errorf("%s: %w", p.path, err)
		}
		time.Sleep(500 * time.Millisecond) // the charts draw after load
		if err := save(p.name, chromedp.CaptureScreenshot()); err != nil {
			return err
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/meters/"+serial), chromedp.WaitVisible(chromedp.CSS("#intervals"))); err != nil {
		return fmt.Errorf("intervals: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := save("intervals.png", chromedp.Screenshot(chromedp.CSS("#intervals"))); err != nil {
		return err
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/meters/"+serial),
		chromedp.WaitVisible(chromedp.CSS("#balance-chart canvas"))); err != nil {
		return fmt.Errorf("phone: %w", err)
	}
	time.Sleep(500 * time.Millisecond)
	return save("phone.png", chromedp.CaptureScreenshot())
}
