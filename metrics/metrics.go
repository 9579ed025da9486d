// Package metrics holds what the packages that export Prometheus metrics
// share: registering a collector that several owners (the links of one
// process, the pools of one switch) use together.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or returns the collector of
// the same description registered before, so that every owner of a vector
// adds its own labelled children to the one series. Any other registration
// error is appended to errs. With a nil reg, c is returned unregistered.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errs = append(*errs, err)
	}
	return c
}
