package main

import (
	"os"
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
	checked := 0
	for _, line := range cli.Mentions(string(b), "flows") {
		if wrong[line] {
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
