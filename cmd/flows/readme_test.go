package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/cli"
)

// Every flows command line the README names (in backticks or a code
// block) is a real command, and every --flag it names is that command's:
// the README cannot drift from the CLI. Lines with placeholders such as
// `init|server` or `…` stand for several and are skipped.
func TestREADMENamesRealCommandsAndFlags(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Deliberate misspellings the README shows an error for.
	wrong := map[string]bool{"flows meter lst": true}
	spans := regexp.MustCompile("`((?:go run \\./cmd/)?flows [^`]*)`").FindAllStringSubmatch(string(b), -1)
	inBlocks := regexp.MustCompile(`(?m)^\s*((?:go run \./cmd/)?flows [^#\n]*)`).FindAllStringSubmatch(codeBlocks(string(b)), -1)
	checked := 0
	for _, m := range append(spans, inBlocks...) {
		line := strings.TrimSpace(strings.TrimPrefix(m[1], "go run ./cmd/"))
		if wrong[line] || strings.ContainsAny(line, "|…<>[]") || strings.Contains(line, "...") {
			continue
		}
		checked++
		if err := cli.CheckMention(newRoot, line); err != nil {
			t.Errorf("README: `%s`: %v", line, err)
		}
	}
	if checked < 30 {
		t.Errorf("only %d command lines found in the README", checked)
	}
}

// codeBlocks returns the README's fenced code, one block after another.
func codeBlocks(s string) string {
	var out strings.Builder
	in := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if in {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}
