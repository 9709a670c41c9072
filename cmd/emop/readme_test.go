package main

import (
	"os"
	"testing"

	"github.com/flows-energy/flows/internal/cli"
)

// Every emop command line the README names is a real command with its
// own flags, as for flows (cmd/flows/readme_test.go); emop's global
// flags come before the command's name.
func TestREADMENamesRealEmopCommandsAndFlags(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := cli.Mentions(string(b), "emop")
	for _, line := range lines {
		if err := cli.CheckMention(newRoot, line); err != nil {
			t.Errorf("README: `%s`: %v", line, err)
		}
	}
	if len(lines) < 3 {
		t.Errorf("only %d emop command lines found in the README: %q", len(lines), lines)
	}
}
