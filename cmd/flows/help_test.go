package main

import (
	"testing"

	"github.com/flows-energy/flows/internal/cli"
)

// TestEveryCommandHasAWorkingExample: a user reading any command's --help
// finds an example that runs as written (flags, arguments, required flags).
func TestEveryCommandHasAWorkingExample(t *testing.T) {
	for _, p := range cli.Lint(newRoot) {
		t.Error(p)
	}
}
