// Command emop is the meter command line for field and support engineers:
// one meter at a time, through a mediator or directly (DESIGN.md §3.3), and
// frame tools for decoding what logs captured.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "emop:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "emop",
		Short:         "Read and write Emlite meters over EMOP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("mediator", os.Getenv("MEDIATOR_SERVER"), "mediator HOST:PORT (default $MEDIATOR_SERVER)")
	root.PersistentFlags().String("direct", "", "talk to the meter at HOST:PORT directly")
	root.PersistentFlags().StringP("serial", "s", "", "meter serial")
	root.AddCommand(newFrameCmd())
	return root
}
