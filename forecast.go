package flows

import (
	"time"

	"github.com/shopspring/decimal"
)

// CreditForecast is when a prepayment meter is expected to reach its
// emergency-credit threshold and to lose supply, from what it has been
// spending: its half hours priced at the active tariff where it has a
// day of them, else its balance's slope (flows.meter_credit_forecast,
// refreshed as each balance reading is written; migrations 0029 and 0033
// give the rule).
type CreditForecast struct {
	// BalanceAt and Balance are the reading it starts from.
	BalanceAt time.Time       `json:"balance_at"`
	Balance   decimal.Decimal `json:"balance"`
	// DaysObserved is how many days the rate is from: of half hours when
	// SpendFrom is intervals, else of falling balance (the steps of the
	// last 7 days between readings, top-ups left out).
	DaysObserved decimal.Decimal `json:"days_observed"`
	// SpendFrom says where SpendPerDay is from: "intervals" (the half
	// hours of the last 7 days priced at the active tariff's unit rates,
	// with its standing charge and the debt recovery the balance shows;
	// migration 0033) or "balance" (its falling steps).
	SpendFrom string `json:"spend_from"`
	// SpendPerDay is GBP a day the meter is spending (nil: nothing spent seen);
	// Low and High bound it (the 10th and 90th percentiles of the days'
	// own rates).
	SpendPerDay     *decimal.Decimal `json:"spend_per_day"`
	SpendPerDayLow  *decimal.Decimal `json:"spend_per_day_low"`
	SpendPerDayHigh *decimal.Decimal `json:"spend_per_day_high"`
	// ECreditThreshold and EmergencyCredit are the active tariff's.
	ECreditThreshold *decimal.Decimal `json:"ecredit_threshold"`
	EmergencyCredit  *decimal.Decimal `json:"emergency_credit"`
	// ECreditAt is when the balance falls below the threshold (nil when it
	// already has, or never will at this rate).
	ECreditAt *time.Time `json:"ecredit_at"`
	// SupplyCutAt is when the balance reaches minus the emergency credit
	// and the meter cuts supply, at SpendPerDay; Earliest and Latest at
	// the band's high and low rates (nil: not spending, a meter in credit
	// mode, or more than ten years away).
	SupplyCutAt       *time.Time `json:"supply_cut_at"`
	SupplyCutEarliest *time.Time `json:"supply_cut_earliest"`
	SupplyCutLatest   *time.Time `json:"supply_cut_latest"`
	ComputedAt        time.Time  `json:"computed_at"`
}

// LosingSupply is a meter forecast to lose supply soon: a row of the
// attention list (flows.meters_credit_forecast, soonest first).
type LosingSupply struct {
	ID                string           `json:"id"`
	Serial            string           `json:"serial"`
	Name              string           `json:"name"`
	Balance           decimal.Decimal  `json:"balance"`
	BalanceAt         time.Time        `json:"balance_at"`
	SpendPerDay       *decimal.Decimal `json:"spend_per_day"`
	SupplyCutAt       time.Time        `json:"supply_cut_at"`
	SupplyCutEarliest *time.Time       `json:"supply_cut_earliest"`
	SupplyCutLatest   *time.Time       `json:"supply_cut_latest"`
}
