package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
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
		&cobra.Command{Use: "init ENV", Example: cli.Example("flows certs init prod"), Short: "Make the environment's CA", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := mediator.InitCA(where(args[0]), args[0]); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "CA written to", where(args[0]))
				return nil
			}},
		func() *cobra.Command {
			c := &cobra.Command{Use: "server ENV", Example: cli.Example("flows certs server prod --host mediator.example.org"), Short: "Make the mediator's certificate", Args: cobra.ExactArgs(1),
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
			c := &cobra.Command{Use: "client ENV CLIENT_ID --ou ROLE", Example: cli.Example("flows certs client prod support-laptop --ou readonly"), Short: "Make a client certificate (roles: internal, partner, readonly)", Args: cobra.ExactArgs(2),
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
		newCertsListCmd(where),
		&cobra.Command{Use: "info CERT", Example: cli.Example("flows certs info ~/.flows/certs/prod/server.pem"), Short: "Show a certificate", Args: cobra.ExactArgs(1),
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

// certRow is one certificate of flows certs list.
type certRow struct {
	File    string    `json:"file"`
	CN      string    `json:"common_name"`
	Role    string    `json:"role"` // the OU: internal, partner, readonly (empty for the CA and server)
	Expires time.Time `json:"expires"`
}

func newCertsListCmd(where func(string) string) *cobra.Command {
	var out *cli.Output
	c := &cobra.Command{Use: "list ENV", Example: cli.Example("flows certs list prod", "flows certs list prod --output json"), Short: "List the environment's certificates", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := where(args[0])
			if _, err := os.Stat(dir); err != nil {
				return flows.FieldError("ENV", "no certificates for %q in %s (make them with flows certs init %s, or point --dir at them)", args[0], dir, args[0])
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
			rows := []certRow{}
			for _, f := range files {
				if strings.HasSuffix(f, "-key.pem") {
					continue
				}
				if c, err := readCert(f); err == nil {
					rows = append(rows, certRow{File: filepath.Base(f), CN: c.Subject.CommonName, Role: strings.Join(c.Subject.OrganizationalUnit, ","), Expires: c.NotAfter.UTC()})
				}
			}
			if out.JSON() {
				return writeJSON(cmd, rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FILE\tCN\tROLE\tEXPIRES")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.File, r.CN, r.Role, r.Expires.Format("2006-01-02"))
			}
			return w.Flush()
		}}
	out = cli.AddOutput(c)
	return c
}
