package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/mediator"
	"github.com/spf13/cobra"
)

func newCertsCmd() *cobra.Command {
	var dir string
	certs := &cobra.Command{Use: "certs", Short: "Certificates for the mediator's mutual TLS: a CA, the server, clients with roles"}
	certs.PersistentFlags().StringVar(&dir, "dir", "", "certificate directory (default ~/.flows/certs/ENV)")
	where := func(env string) string {
		if dir != "" {
			return dir
		}
		home, _ := os.UserHomeDir()
		return filepath.Join(home, ".flows", "certs", env)
	}
	var hosts []string
	var role string
	certs.AddCommand(
		&cobra.Command{Use: "init ENV", Short: "Make the environment's CA", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := mediator.InitCA(where(args[0]), args[0]); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "CA written to", where(args[0]))
				return nil
			}},
		func() *cobra.Command {
			c := &cobra.Command{Use: "server ENV", Short: "Make the mediator's certificate", Args: cobra.ExactArgs(1),
				RunE: func(cmd *cobra.Command, args []string) error {
					if err := mediator.Issue(where(args[0]), "server", "", hosts); err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), "server certificate written to", where(args[0]))
					return nil
				}}
			c.Flags().StringSliceVar(&hosts, "host", nil, "extra host names or addresses for the certificate")
			return c
		}(),
		func() *cobra.Command {
			c := &cobra.Command{Use: "client ENV CLIENT_ID --ou ROLE", Short: "Make a client certificate (roles: internal, partner, readonly)", Args: cobra.ExactArgs(2),
				RunE: func(cmd *cobra.Command, args []string) error {
					if args[1] == "server" || args[1] == "ca" || strings.ContainsAny(args[1], "/\\. ") {
						return flows.FieldError("CLIENT_ID", "%q cannot be a client name", args[1])
					}
					if err := mediator.Issue(where(args[0]), args[1], role, nil); err != nil {
						return flows.FieldError("--ou", "%v", err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "client %s (%s) written to %s\n", args[1], role, where(args[0]))
					return nil
				}}
			c.Flags().StringVar(&role, "ou", "", "role: internal, partner or readonly")
			_ = c.MarkFlagRequired("ou")
			return c
		}(),
		&cobra.Command{Use: "list ENV", Short: "List the environment's certificates", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				files, _ := filepath.Glob(filepath.Join(where(args[0]), "*.pem"))
				for _, f := range files {
					if strings.HasSuffix(f, "-key.pem") {
						continue
					}
					if c, err := readCert(f); err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "%s\tCN=%s OU=%s\texpires %s\n", filepath.Base(f), c.Subject.CommonName,
							strings.Join(c.Subject.OrganizationalUnit, ","), c.NotAfter.Format("2006-01-02"))
					}
				}
				return nil
			}},
		&cobra.Command{Use: "info CERT", Short: "Show a certificate", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := readCert(args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "subject: %s\nissuer: %s\nvalid: %s to %s\ndns: %v\nips: %v\n", c.Subject, c.Issuer,
					c.NotBefore.Format("2006-01-02"), c.NotAfter.Format("2006-01-02"), c.DNSNames, c.IPAddresses)
				return nil
			}},
	)
	return certs
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s is not PEM", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}
