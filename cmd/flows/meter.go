package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/spf13/cobra"
)

func newMeterCmd() *cobra.Command {
	meter := &cobra.Command{Use: "meter", Short: "Meters: import, list, show, sync, and requests to them (tariff, topup)"}
	meter.AddCommand(newMeterImportCmd(), newMeterListCmd(), newMeterShowCmd(), newMeterSyncCmd(), newTariffCmd(), newTopupCmd())
	return meter
}

func newMeterImportCmd() *cobra.Command {
	var esco string
	imp := &cobra.Command{
		Use:     "import FILE",
		Example: cli.Example("flows meter import meters.json"),
		Short:   `Register meters from a JSON file {"meters": [{"serial", "ip_address", "port", "hardware", ...}]}`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := readRegistryFile(args[0])
			if err != nil {
				return err
			}
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			ms := make([]flows.NewMeter, len(entries))
			layouts := make([]string, len(entries))
			for i, e := range entries {
				ms[i] = flows.NewMeter{Serial: e.Serial, Name: e.Name, IPAddress: e.IPAddress, Port: e.Port,
					Hardware: e.Hardware, Mode: flows.Mode(e.Mode), DaylightSavingsCorrectionEnabled: e.DST}
				layouts[i] = e.Layout
			}
			bar := cli.NewProgress(cmd.OutOrStdout(), "meters written", len(ms))
			defer bar.Done()
			res, err := store.ImportMetersWithProgress(cmd.Context(), esco, ms, layouts, func(n int) { bar.Set(n, 0) })
			if err != nil {
				return err
			}
			bar.Done() // its line ended before the result's
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d meters: %d new, %d updated\n", len(ms), res.Created, res.Updated)
			return nil
		},
	}
	imp.Flags().StringVar(&esco, "esco", "", "ESCO code the meters belong to")
	addDatabaseFlag(imp)
	return imp
}

func newMeterListCmd() *cobra.Command {
	var filter flows.MeterFilter
	var mode, health string
	var out *cli.Output
	list := &cobra.Command{
		Use:     "list",
		Example: cli.Example("flows meter list", "flows meter list --esco WLCE --output json"),
		Short:   "List registered meters",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter.Mode, filter.Health = flows.Mode(mode), flows.Health(health)
			if err := filter.Validate(); err != nil {
				return err // a usage error: it names the flag
			}
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			if filter.ESCOCode != "" {
				// An ESCO misspelt is a mistake to say, not an empty table.
				if _, err := store.ESCOByCode(cmd.Context(), filter.ESCOCode); err != nil {
					return err
				}
			}
			ms, err := store.MeterRows(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if out.JSON() {
				return writeJSON(cmd, ms)
			}
			return writeMeterTable(cmd, ms)
		},
	}
	list.Flags().StringVar(&filter.ESCOCode, "esco", "", "only this ESCO")
	list.Flags().StringVar(&mode, "mode", "", "active or passive")
	list.Flags().StringVar(&health, "health", "", "healthy or unhealthy")
	list.Flags().StringVarP(&filter.Query, "query", "q", "", "serial or name contains")
	out = cli.AddOutput(list)
	addDatabaseFlag(list)
	return list
}

// writeMeterTable prints meters as flows meter list's table: who the
// meter is, and what an operator looks at first (balance, health, signal,
// when it last answered). "-" is a value Flows has not read yet.
func writeMeterTable(cmd *cobra.Command, ms []flows.MeterRow) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERIAL\tNAME\tMODE\tHARDWARE\tESCO\tBALANCE\tHEALTH\tCSQ\tLAST ONLINE")
	for _, m := range ms {
		balance, health, csq, online := "-", "-", "-", "-"
		if m.Balance != nil {
			balance = "£" + m.Balance.StringFixed(2)
			if m.Stale {
				balance += " (stale)"
			}
		}
		if m.Health != nil {
			health = string(*m.Health)
		}
		if m.CSQ != nil {
			csq = fmt.Sprint(*m.CSQ)
		}
		if m.LastOnline != nil {
			online = m.LastOnline.UTC().Format("2006-01-02 15:04Z")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Serial, m.Name, m.Mode, m.Hardware, m.ESCOCode, balance, health, csq, online)
	}
	return w.Flush()
}

func newMeterShowCmd() *cobra.Command {
	show := &cobra.Command{
		Use:               "show SERIAL",
		ValidArgsFunction: completeSerials,
		Example:           cli.Example("flows meter show EML2137580826"),
		Short:             "Show a meter's registry row, shadow and registers as JSON",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flows.ValidateSerial(args[0]); err != nil {
				return err
			}
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			st, err := store.MeterStatus(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd, st)
		},
	}
	addDatabaseFlag(show)
	return show
}

func newMeterSyncCmd() *cobra.Command {
	sync := &cobra.Command{
		Use:               "sync SERIAL",
		ValidArgsFunction: completeSerials,
		Example:           cli.Example("flows meter sync EML2137580826"),
		Short:             "Queue an immediate sync of one meter",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, m, closeFn, err := meterArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer closeFn()
			if _, err := m.Address(); err != nil {
				return err // a twin is fed from the database where it is active
			}
			eng, err := syncer.New(syncer.Config{Store: store, NewQueue: queueOf(store)})
			if err != nil {
				return err
			}
			if err := eng.SyncNow(cmd.Context(), m.ID); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync of %s queued ahead of scheduled work\n", m.Serial)
			return nil
		},
	}
	addDatabaseFlag(sync)
	return sync
}

// registryEntry is one meter of a registry file (flows sim --registry-out,
// or the demo's ready-file).
type registryEntry struct {
	Serial    string `json:"serial"`
	Name      string `json:"name"`
	IPAddress string `json:"ip_address"`
	Port      int    `json:"port"`
	Hardware  string `json:"hardware"`
	Mode      string `json:"mode"`
	Key       string `json:"key"`
	Layout    string `json:"layout"`
	DST       bool   `json:"daylight_savings_correction_enabled"`
}

func readRegistryFile(path string) ([]registryEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, flows.FieldError("FILE", "%v", err)
	}
	defer f.Close()
	var doc struct {
		Meters []registryEntry `json:"meters"`
	}
	dec := json.NewDecoder(f)
	if err := dec.Decode(&doc); err != nil {
		return nil, flows.FieldError("FILE", "%s is not a registry JSON document: %v", path, err)
	}
	if len(doc.Meters) == 0 {
		return nil, flows.FieldError("meters", "%s lists no meters", path)
	}
	return doc.Meters, nil
}

// meterArg validates a serial argument and finds the meter; the caller
// closes the store.
func meterArg(cmd *cobra.Command, serial string) (*postgres.Store, *flows.Meter, func(), error) {
	if err := flows.ValidateSerial(serial); err != nil {
		return nil, nil, nil, err
	}
	store, closeFn, err := openStore(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := store.MeterBySerial(cmd.Context(), serial)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return store, m, closeFn, nil
}

func openStore(cmd *cobra.Command) (*postgres.Store, func(), error) {
	return openStoreCtx(cmd.Context(), cmd)
}

// openStoreCtx is openStore connecting within ctx.
func openStoreCtx(ctx context.Context, cmd *cobra.Command) (*postgres.Store, func(), error) {
	url, err := databaseURL(cmd)
	if err != nil {
		return nil, nil, err
	}
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return postgres.NewStore(pool), pool.Close, nil
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// completeSerials completes a SERIAL argument from the registry (the
// database of --database-url or $FLOWS_DATABASE_URL), never with file
// names: nothing when no database is given or it does not answer within
// 2 s (a completion must not hang the shell).
func completeSerials(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	store, closeFn, err := openStoreCtx(ctx, cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer closeFn()
	ms, err := store.Meters(ctx, flows.MeterFilter{Query: toComplete, Limit: 200})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, m := range ms {
		if strings.HasPrefix(m.Serial, strings.ToUpper(toComplete)) {
			if m.Name != "" {
				out = append(out, m.Serial+"\t"+m.Name) // the shell shows the name beside it
			} else {
				out = append(out, m.Serial)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
