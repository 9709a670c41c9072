package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress is a progress bar for long work (exports, benchmarks), drawn on
// stderr only when a person is watching: stdout and stderr both
// terminals. Piped or redirected, it draws nothing, so scripts and logs
// see only the result lines. Safe for concurrent use.
type Progress struct {
	w     io.Writer // nil: not drawing
	label string
	total int

	mu    sync.Mutex
	done  int
	drawn time.Time
	start time.Time
}

// NewProgress returns a bar for total items of work named label, drawn
// on stderr when stdout and stderr are terminals (see IsTerminal).
func NewProgress(stdout io.Writer, label string, total int) *Progress {
	p := &Progress{label: label, total: total, start: time.Now()}
	if IsTerminal(stdout) && IsTerminal(os.Stderr) {
		p.w = os.Stderr
	}
	return p
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Add counts n more items done and redraws at most ten times a second.
func (p *Progress) Add(n int) { p.Set(-1, n) }

// Set sets the items done (when done ≥ 0) or adds n, and redraws.
func (p *Progress) Set(done, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if done >= 0 {
		p.done = done
	} else {
		p.done += n
	}
	if p.w == nil || time.Since(p.drawn) < 100*time.Millisecond && p.done < p.total {
		return
	}
	p.drawn = time.Now()
	fmt.Fprint(p.w, "\r"+Bar(p.label, p.done, p.total, time.Since(p.start)))
}

// Done ends the bar's line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil && !p.drawn.IsZero() {
		fmt.Fprint(p.w, "\r"+Bar(p.label, p.done, p.total, time.Since(p.start))+"\n")
	}
	p.w = nil
}

// Bar renders one progress line: label, a 30-column bar, the share, the
// count and the time so far.
func Bar(label string, done, total int, elapsed time.Duration) string {
	frac := 1.0
	if total > 0 {
		frac = min(max(float64(done)/float64(total), 0), 1)
	}
	full := int(frac * 30)
	return fmt.Sprintf("%s [%s%s] %3.0f%% %d/%d %s", label, strings.Repeat("=", full), strings.Repeat(" ", 30-full),
		frac*100, done, total, elapsed.Round(time.Second))
}
