// Command emop is the meter command line for field and support engineers:
// one meter (or a list) at a time, through a mediator or directly
// (DESIGN.md §3.3), plus frame tools for decoding what logs captured.
package main

import (
	"context"
	"os"
	"strings"

	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

func main() {
	root := newRoot()
	cli.Prepare(root)
	os.Exit(cli.Run(context.Background(), root, os.Args[1:], os.Stderr, func(err error) (string, int) {
		// Errors of the emop package carry its name; the line already does.
		return strings.TrimPrefix(explain(err), "emop: "), cli.ExitFailure
	}))
}

func newRoot() *cobra.Command {
	loadEnvDefaults() // the current environment file (env_set), under flags and variables
	var g globals
	root := &cobra.Command{
		Use:   "emop [--mediator HOST:PORT | --direct HOST:PORT] [-s SERIAL] COMMAND [ARGS]",
		Short: "Read and write Emlite meters over EMOP",
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.mediator, "mediator", os.Getenv("MEDIATOR_SERVER"), "mediator HOST:PORT (default $MEDIATOR_SERVER)")
	pf.StringVar(&g.direct, "direct", "", "talk to the meter at HOST:PORT directly, without a mediator")
	pf.StringVarP(&g.serial, "serial", "s", "", "meter serial")
	pf.StringSliceVar(&g.serials, "serials", nil, "several serials, comma separated")
	pf.StringVar(&g.serialsFile, "serials-file", "", "a file with one serial per line")
	pf.DurationVar(&g.gap, "gap", 2e9, "with --direct: minimum time between requests to the meter")
	pf.StringVar(&g.cert, "cert", os.Getenv("MEDIATOR_CLIENT_CERT"), "client certificate for a mutual-TLS mediator (PEM file)")
	pf.StringVar(&g.key, "key", os.Getenv("MEDIATOR_CLIENT_KEY"), "client key (PEM file)")
	pf.StringVar(&g.ca, "ca", os.Getenv("MEDIATOR_CA_CERT"), "CA of the mediator's certificate (PEM file)")
	root.AddCommand(newFrameCmd())
	addMeterCommands(root, &g)
	addEnvCommands(root)
	root.AddCommand(newClockDriftCmd(&g))
	return root
}
