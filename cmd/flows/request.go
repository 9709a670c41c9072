package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

// requester names who asked, for the audit log.
func requester() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

func newTariffCmd() *cobra.Command {
	var from, rateA, rateB, sc, ec, eca, drr string
	cmd := &cobra.Command{
		Use:               "tariff SERIAL",
		ValidArgsFunction: completeSerials,
		Example:           cli.Example("flows meter tariff EML2137580826 --from-ts 2027-01-01T00:00:00Z --unit-rate 0.2843 --standing-charge 0.5512"),
		Short:             "Schedule a future tariff: a durable request, pushed and verified by the commands component",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rateB == "" {
				rateB = rateA
			}
			t := flows.Tariff{ActivationDatetime: &from}
			amounts := []struct {
				flag, text string
				dst        **decimal.Decimal
			}{{"--unit-rate", rateA, &t.UnitRateElementA}, {"--unit-rate-b", rateB, &t.UnitRateElementB}, {"--standing-charge", sc, &t.StandingCharge},
				{"--emergency-credit", ec, &t.PrepaymentEmergencyCredit}, {"--ecredit-availability", eca, &t.PrepaymentECreditAvailability},
				{"--debt-recovery-rate", drr, &t.PrepaymentDebtRecoveryRate}}
			for _, v := range amounts {
				if v.text == "" {
					continue // the meter's own, below
				}
				d, err := decimal.NewFromString(v.text)
				if err != nil {
					return flows.FieldError(v.flag, "%q is not a decimal amount", v.text)
				}
				*v.dst = &d
			}
			store, m, closeFn, err := meterArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer closeFn()
			// The prepayment settings not given stay as the meter has them
			// (its active tariff, as last read); a meter not read yet gets
			// the usual ones.
			active := &flows.Tariff{}
			if sh, err := store.Shadow(cmd.Context(), m.ID); err != nil {
				return err
			} else if sh.TariffsActive != nil {
				active = sh.TariffsActive
			}
			for _, d := range []struct {
				dst      **decimal.Decimal
				meter    *decimal.Decimal
				fallback string
			}{{&t.PrepaymentEmergencyCredit, active.PrepaymentEmergencyCredit, "15.00"},
				{&t.PrepaymentECreditAvailability, active.PrepaymentECreditAvailability, "10.00"},
				{&t.PrepaymentDebtRecoveryRate, active.PrepaymentDebtRecoveryRate, "0.30"}} {
				if *d.dst == nil {
					v := decimal.RequireFromString(d.fallback)
					if d.meter != nil {
						v = *d.meter
					}
					*d.dst = &v
				}
			}
			req, err := store.SetFutureTariff(cmd.Context(), m.ID, t, "cli", requester())
			if err != nil {
				return err
			}
			if time.Until(req.ActivationAt) < 24*time.Hour {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: activation is less than 24 hours ahead; the meter may not be reached in time")
			}
			return writeJSON(cmd, req)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from-ts", "", "activation: RFC 3339; without an offset it is the meter's clock time (required)")
	f.StringVar(&rateA, "unit-rate", "", "unit rate GBP/kWh, element A (required)")
	f.StringVar(&rateB, "unit-rate-b", "", "element B unit rate (default: --unit-rate)")
	f.StringVar(&sc, "standing-charge", "", "standing charge GBP/day (required)")
	f.StringVar(&ec, "emergency-credit", "", "emergency credit GBP (default: the meter's active tariff's, else 15.00)")
	f.StringVar(&eca, "ecredit-availability", "", "emergency credit availability threshold GBP (default: the meter's active tariff's, else 10.00)")
	f.StringVar(&drr, "debt-recovery-rate", "", "debt recovery GBP/day (default: the meter's active tariff's, else 0.30)")
	for _, r := range []string{"from-ts", "unit-rate", "standing-charge"} {
		_ = cmd.MarkFlagRequired(r)
	}
	addDatabaseFlag(cmd)
	return cmd
}

func newTopupCmd() *cobra.Command {
	var token, amount, source string
	cmd := &cobra.Command{
		Use:               "topup SERIAL --token DIGITS",
		ValidArgsFunction: completeSerials,
		Example:           cli.Example("flows meter topup EML2137580826 --token 12345678901234567890 --amount 10.00"),
		Short:             "Add a top-up token to the ledger; the commands component pushes and confirms it",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var amt *decimal.Decimal
			if amount != "" {
				d, err := decimal.NewFromString(amount)
				if err != nil {
					return flows.FieldError("--amount", "%q is not a decimal amount", amount)
				}
				amt = &d
			}
			store, m, closeFn, err := meterArg(cmd, args[0])
			if err != nil {
				return err
			}
			defer closeFn()
			tu, err := store.CreateTopup(cmd.Context(), m.ID, token, amt, source, requester())
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(tu, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "20-digit token (required)")
	cmd.Flags().StringVar(&amount, "amount", "", "GBP, for the ledger")
	cmd.Flags().StringVar(&source, "source", "payment", "payment, gift, solar_credit or adjustment")
	_ = cmd.MarkFlagRequired("token")
	addDatabaseFlag(cmd)
	return cmd
}
