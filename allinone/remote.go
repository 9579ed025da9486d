package allinone

import (
	"errors"

	switching "github.com/junction-switch/junction/switch"
)

// Remote is how the switch reaches a region's shard running as its own
// process (`junction ledger --region NAME`), and where that process
// listens.
type Remote struct {
	Listen    string   `yaml:"listen"`    // where the shard process accepts the switch's links
	Endpoints []string `yaml:"endpoints"` // where the switch connects; default: listen
}

// validateRemotes checks the remote settings of every region.
func (c Config) validateRemotes() []error { return nil }

// remoteDestination is the destination of a region reached over links.
func (n *Node) remoteDestination(r Region) (switching.Destination, error) {
	return nil, errors.New("remote regions are being built (issue 5)")
}
