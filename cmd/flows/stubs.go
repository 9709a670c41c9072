package main

import "github.com/spf13/cobra"

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API, sync engine, commands and mediator against a database",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return notImplemented("flows serve") },
	}
	addDatabaseFlag(cmd)
	cmd.Flags().String("http", "127.0.0.1:8000", "HTTP listen address")
	cmd.Flags().String("grpc", "127.0.0.1:50051", "gRPC (mediator) listen address")
	cmd.Flags().String("components", "api,sync,commands,mediator", "components to run")
	return cmd
}

func newSimCmd() *cobra.Command {
	sim := &cobra.Command{
		Use:   "sim",
		Short: "Run an emulated fleet of Emlite meters",
		RunE:  func(cmd *cobra.Command, args []string) error { return notImplemented("flows sim") },
	}
	sim.Flags().Int("meters", 50, "number of meters")
	sim.Flags().String("listen", "", "address range")
	sim.Flags().Float64("speed", 1, "simulated time speed-up")
	sim.Flags().String("state", "", "state file")
	sim.Flags().String("registry-out", "", "write the fleet registry JSON here")
	token := &cobra.Command{
		Use:   "token",
		Short: "Print a top-up token for a simulated meter",
		RunE:  func(cmd *cobra.Command, args []string) error { return notImplemented("flows sim token") },
	}
	token.Flags().String("registry", "", "fleet registry JSON")
	token.Flags().String("serial", "", "meter serial")
	token.Flags().String("amount", "", "GBP")
	sim.AddCommand(token)
	return sim
}
