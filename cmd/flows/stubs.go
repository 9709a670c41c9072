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
