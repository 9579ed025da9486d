package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	var errs []error
	opts := prometheus.CounterOpts{Name: "x_total", Help: "x"}
	a := Register(reg, prometheus.NewCounterVec(opts, []string{"k"}), &errs)
	b := Register(reg, prometheus.NewCounterVec(opts, []string{"k"}), &errs)
	if a != b || len(errs) != 0 {
		t.Fatalf("the second owner got another vector (%v)", errs)
	}
	// The same name with other labels is a conflict, reported.
	Register(reg, prometheus.NewCounterVec(opts, []string{"other"}), &errs)
	if len(errs) != 1 {
		t.Fatalf("errs %v", errs)
	}
	if c := Register(nil, prometheus.NewCounter(opts), &errs); c == nil || len(errs) != 1 {
		t.Fatal("nil registry")
	}
}
