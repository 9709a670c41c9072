package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/flows-energy/flows"
	"github.com/spf13/cobra"
)

func printMeterTable(cmd *cobra.Command, js string) error {
	var rows []flows.CLIMeter // the mediator's GetMeters JSON
	if err := json.Unmarshal([]byte(js), &rows); err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool { return str(rows[i].Name) < str(rows[j].Name) })
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ESCO\tSERIAL\tNAME\tSIGNAL\tHEALTH\tHARDWARE\tFEEDER")
	for _, r := range rows {
		signal := "-"
		if r.CSQ != nil {
			signal = fmt.Sprint(*r.CSQ)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", str(r.ESCO), r.Serial, str(r.Name), signal, str(r.Health), str(r.Hardware), str(r.Feeder))
	}
	return w.Flush()
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
