package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

type addFunc func(name, short string, nargs cobra.PositionalArgs, record bool, run runFunc) *cobra.Command

// addTariffWrite adds tariffs_future_write: every value is validated before
// anything is sent, then the reference's write sequence runs.
func addTariffWrite(add addFunc) {
	var fromTS, unitRate, unitRateB, standing, ec, eca, drr string
	c := add("tariffs_future_write", "schedule the future tariff", cobra.MaximumNArgs(1), false,
		func(ctx context.Context, m meterop.Meters, t meterconn.Target, _ []string) (any, error) {
			f, err := parseFutureTariff(unitRate, unitRateB, standing, ec, eca, drr)
			if err != nil {
				return nil, err
			}
			at, hasOffset, err := flows.ParseActivation(fromTS)
			if err != nil {
				return nil, flows.FieldError("--from-ts", "%v", err)
			}
			// Without an offset --from-ts is the meter's clock time; with
			// one it is an instant, shown in the meter's clock zone.
			f.ActivationWall = at
			if hasOffset {
				dst, err := meterop.U8(ctx, m, t, emop.ObjDSTFlag)
				if err != nil {
					return nil, err
				}
				w := at.In(flows.MeterClockZone(dst == 1))
				f.ActivationWall = time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, time.UTC)
			}
			if err := f.Validate(); err != nil {
				return nil, err
			}
			return nil, meterop.WriteFutureTariff(ctx, m, t, f)
		})
	c.Flags().StringVar(&fromTS, "from-ts", "", "activation: ISO 8601; without an offset it is the meter's clock time (required)")
	c.Flags().StringVar(&unitRate, "unit-rate", "", "unit rate GBP/kWh (required; element A, and B unless --unit-rate-b)")
	c.Flags().StringVar(&unitRateB, "unit-rate-b", "", "element B unit rate (default: --unit-rate)")
	c.Flags().StringVar(&standing, "standing-charge", "", "standing charge GBP/day (required)")
	c.Flags().StringVar(&ec, "emergency-credit", "15.00", "emergency credit GBP")
	c.Flags().StringVar(&eca, "ecredit-availability", "10.00", "emergency credit availability threshold GBP")
	c.Flags().StringVar(&drr, "debt-recovery-rate", "0.30", "debt recovery GBP/day")
	c.Example = meterExample("tariffs_future_write --from-ts 2027-01-01T00:00:00 --unit-rate 0.2843 --standing-charge 0.5512")
	for _, f := range []string{"from-ts", "unit-rate", "standing-charge"} {
		_ = c.MarkFlagRequired(f)
	}
	// Validate before choosing a route, so bad input never reaches a meter.
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		f, err := parseFutureTariff(unitRate, unitRateB, standing, ec, eca, drr)
		if err != nil {
			return err
		}
		if _, _, err := flows.ParseActivation(fromTS); err != nil {
			return flows.FieldError("--from-ts", "%v", err)
		}
		f.ActivationWall = emop.Epoch // the amounts are what is checked here
		if err := f.Validate(); err != nil {
			return err
		}
		// The limits an operator's request meets in Flows (API, CLI, SQL):
		// an activation in the past or years ahead is a mistake here too.
		// Read in UTC: a DST-corrected meter's local time differs by an hour
		// at most, which the meter's own check then decides.
		req := flows.Tariff{StandingCharge: &f.StandingCharge, UnitRateElementA: &f.UnitRateA, UnitRateElementB: &f.UnitRateB,
			PrepaymentEmergencyCredit: &f.EmergencyCredit, PrepaymentECreditAvailability: &f.ECreditAvailability,
			PrepaymentDebtRecoveryRate: &f.DebtRecoveryRate, ActivationDatetime: &fromTS}
		if err := req.ValidateRequest("", false, time.Now()); err != nil {
			return flows.FieldError(tariffFlags[flows.ErrorField(err)], "%s", strings.TrimPrefix(flows.ErrorMessage(err), flows.ErrorField(err)+": "))
		}
		return run(cmd, args)
	}
}

// tariffFlags names each tariff field by its flag, for errors.
var tariffFlags = map[string]string{
	"standing_charge": "--standing-charge", "unit_rate_element_a": "--unit-rate", "unit_rate_element_b": "--unit-rate-b",
	"prepayment_emergency_credit": "--emergency-credit", "prepayment_ecredit_availability": "--ecredit-availability",
	"prepayment_debt_recovery_rate": "--debt-recovery-rate", "activation_datetime": "--from-ts",
}

func parseFutureTariff(unitRate, unitRateB, standing, ec, eca, drr string) (meterop.FutureTariff, error) {
	var f meterop.FutureTariff
	if unitRateB == "" {
		unitRateB = unitRate
	}
	for _, v := range []struct {
		flag, text string
		dst        *decimal.Decimal
	}{{"--unit-rate", unitRate, &f.UnitRateA}, {"--unit-rate-b", unitRateB, &f.UnitRateB}, {"--standing-charge", standing, &f.StandingCharge},
		{"--emergency-credit", ec, &f.EmergencyCredit}, {"--ecredit-availability", eca, &f.ECreditAvailability}, {"--debt-recovery-rate", drr, &f.DebtRecoveryRate}} {
		d, err := decimal.NewFromString(v.text)
		if err != nil {
			return f, flows.FieldError(v.flag, "%q is not a decimal amount", v.text)
		}
		*v.dst = d
	}
	return f, nil
}

// addManagement adds info and list, which ask the mediator's InfoService.
func addManagement(root *cobra.Command, g *globals) {
	root.AddCommand(&cobra.Command{Use: "info [SERIAL]", Short: "registry and shadow of a meter (from the mediator)", Args: cobra.MaximumNArgs(1),
		Example: cli.Example("emop info EML2137580826", "emop -s EML2137580826 info"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.mediatorClient(cmd)
			if err != nil {
				return err
			}
			ts, err := g.targets(cmd, args)
			if err != nil {
				return err
			}
			js, err := c.Info(cmd.Context(), ts[0].Serial)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), js)
			return nil
		}})
	var esco string
	var out *cli.Output
	list := &cobra.Command{Use: "list", Short: "the mediator's meters", Args: cobra.NoArgs,
		Example: cli.Example("emop list", "emop list --esco WLCE --output json"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.mediatorClient(cmd)
			if err != nil {
				return err
			}
			js, err := c.Meters(cmd.Context(), esco)
			if err != nil {
				return err
			}
			if out.JSON() {
				fmt.Fprintln(cmd.OutOrStdout(), js)
				return nil
			}
			return printMeterTable(cmd, js)
		}}
	list.Flags().StringVar(&esco, "esco", "", "only this ESCO")
	out = cli.AddOutput(list)
	root.AddCommand(list)
}
