package allinone

import (
	"strings"
	"testing"
	"time"
)

func TestCutoverSchedule(t *testing.T) {
	h := HeadSettings{Cutover: []string{"06:00", "23:30"}}
	times, err := h.cutoverTimes()
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		opened, now string
		due         bool
	}{
		{"2026-11-25T06:00:01Z", "2026-11-25T23:29:59Z", false}, // between two cutovers
		{"2026-11-25T06:00:01Z", "2026-11-25T23:30:00Z", true},  // on the dot
		{"2026-11-24T23:30:05Z", "2026-11-25T05:00:00Z", false}, // after midnight, before 06:00
		{"2026-11-24T12:00:00Z", "2026-11-25T05:00:00Z", true},  // yesterday's 23:30 was missed
		{"2026-11-20T12:00:00Z", "2026-11-25T07:00:00Z", true},  // down for days: one cutover, not five
	} {
		if got := cutoverDue(times, at(c.opened), at(c.now)); got != c.due {
			t.Errorf("opened %s, now %s: due %v, want %v", c.opened, c.now, got, c.due)
		}
	}
	if cutoverDue(nil, time.Time{}, time.Now()) {
		t.Error("no schedule, yet a cutover is due")
	}
	for _, bad := range []string{"24:00", "6:00", "06:60", "noon"} {
		if _, err := (HeadSettings{Cutover: []string{bad}}).cutoverTimes(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBusinessDate(t *testing.T) {
	times := []int{6 * 60, 23*60 + 30}
	for at, want := range map[string]uint32{
		"2026-11-25T06:00:00Z": 20261125, // a cutover within the day: same business day
		"2026-11-25T23:30:00Z": 20261126, // the day's last: the next business day
		"2026-12-31T23:30:00Z": 20270101,
	} {
		v, _ := time.Parse(time.RFC3339, at)
		if got := businessDate(times, v); got != want {
			t.Errorf("%s: %d, want %d", at, got, want)
		}
	}
}

// Head settings that the head ledger, clearing or reconciliation would refuse at run time are
// refused by validation, with their key.
func TestHeadSettingsRefusedAtValidation(t *testing.T) {
	if errs := DefaultConfig().validateHead(); len(errs) > 0 {
		t.Fatalf("default head settings: %v", errs)
	}
	for _, tc := range []struct {
		key    string
		modify func(h *HeadSettings)
	}{
		{"head.reconciliation.date_tolerance", func(h *HeadSettings) { h.Recon.DateTolerance = 40 }},
		{"head.reconciliation.tolerance", func(h *HeadSettings) { h.Recon.Tolerance = "0.005" }},
		{"head.reconciliation.tolerance", func(h *HeadSettings) { h.Recon.Tolerance = "1e17" }},
		{"head.institutions[0].name", func(h *HeadSettings) { h.Institutions[0].Name = "POS | acquirer" }},
		{"head.institutions[0].account", func(h *HeadSettings) { h.Institutions[0].Account = "6222\n0001" }},
		{"head.reconciliation.partners[1].org", func(h *HeadSettings) {
			h.Recon.Partners = append(h.Recon.Partners, PartnerConfig{Org: "sddl", Acquirer: "10000004"})
		}},
		{"head.reconciliation.partners[1].org", func(h *HeadSettings) {
			h.Recon.Partners = append(h.Recon.Partners, h.Recon.Partners[0])
		}},
		{"head.reconciliation.partners[1].acquirer", func(h *HeadSettings) {
			h.Recon.Partners = append(h.Recon.Partners, PartnerConfig{Org: "JNB", Acquirer: "bank four"})
		}},
	} {
		cfg := DefaultConfig()
		cfg.Head.Institutions = append([]InstitutionInfo(nil), cfg.Head.Institutions...)
		cfg.Head.Recon.Partners = append([]PartnerConfig(nil), cfg.Head.Recon.Partners...)
		tc.modify(&cfg.Head)
		errs := cfg.validateHead()
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.key) {
			t.Errorf("%s: got %v", tc.key, errs)
		}
	}
}
