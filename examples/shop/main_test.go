//go:build unix

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-go/troupe/examples/internal/proctest"
)

// TestBinary builds the example and runs it as a user would: start, place
// an order over HTTP, see it fulfilled, stop with SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the program")
	}
	bin := buildShop(t)

	addr := proctest.FreeAddr(t)
	var out proctest.Buffer
	cmd := exec.Command(bin, "--http", addr, "--data", t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error // set before exited closes
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nprogram output:\n%s", append(args, out.String())...)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://" + addr
	get := func(path string) (int, []byte, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	// poll calls ready until it reports true, the program exits, or time
	// runs out.
	poll := func(what string, ready func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ready() {
			select {
			case <-exited:
				fail("program exited (%v) while waiting for %s", waitErr, what)
			case <-time.After(20 * time.Millisecond): // poll interval
			}
			if time.Now().After(deadline) {
				fail("timed out waiting for %s", what)
			}
		}
	}

	poll("/healthz", func() bool {
		status, _, err := get("/healthz")
		return err == nil && status == http.StatusOK
	})

	resp, err := client.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer":"ada","items":[{"sku":"book","qty":2}]}`))
	if err != nil {
		fail("POST /orders: %v", err)
	}
	var placed struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&placed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || placed.ID == "" {
		fail("POST /orders: %d, id %q, %v", resp.StatusCode, placed.ID, err)
	}

	poll("the order to be notified", func() bool {
		status, b, err := get("/orders/" + placed.ID)
		var o struct{ Status string }
		return err == nil && status == http.StatusOK && json.Unmarshal(b, &o) == nil && o.Status == "notified"
	})
	for _, line := range []string{
		"orders: placing order " + placed.ID,
		"payment: charged order " + placed.ID + " 24.00 EUR",
		"inventory: reserved 2×book for order " + placed.ID,
		"shipping: order " + placed.ID + " goes with",
		"notification: emailed ada that order " + placed.ID,
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the log lacks %q", line)
		}
	}

	client.CloseIdleConnections()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			fail("after SIGTERM the program exited with %v, want status 0", waitErr)
		}
	case <-time.After(15 * time.Second):
		fail("the program did not exit within 15s of SIGTERM")
	}
	if !strings.Contains(out.String(), "troupe app stopped") {
		t.Errorf("the log lacks the stop line")
	}
}
