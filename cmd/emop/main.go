// Command emop is the meter command line for field and support engineers:
// one meter at a time, through a mediator or directly (DESIGN.md §3.3).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "emop",
		Short:         "Read and write Emlite meters over EMOP",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("meter commands are not implemented yet")
		},
	}
	root.PersistentFlags().String("mediator", os.Getenv("MEDIATOR_SERVER"), "mediator HOST:PORT (default $MEDIATOR_SERVER)")
	root.PersistentFlags().String("direct", "", "talk to the meter at HOST:PORT directly")
	root.PersistentFlags().StringP("serial", "s", "", "meter serial")
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "emop:", err)
		os.Exit(3)
	}
}
