package switching

import (
	"fmt"

	"github.com/junction-switch/junction/codec"
)

// reversalFields are the fields of a request its reversal advice repeats:
// what identifies the card, the amount and where the request came from.
// Never PIN, track or ICC data: a reversal moves no authorisation data.
var reversalFields = []int{2, 3, 4, 7, 11, 12, 13, 22, 32, 37, 41, 42, 43, 49, 102}

// needsReversal reports whether an unanswered request may have changed a
// balance at its destination, so that a reversal must undo it: financial
// requests and authorisations, except balance inquiries.
func needsReversal(mti [4]byte, req *codec.Message) bool {
	if mti[1] != codec.ClassFinancial && mti[1] != codec.ClassAuthorization || mti[2] != '0' {
		return false // advices are stored and forwarded, never reversed here
	}
	pcode := req.Get(3)
	return len(pcode) < 2 || string(pcode[:2]) != codec.TxBalance
}

// buildReversal makes rev the reversal advice (0420) of req, an unanswered
// request.
func buildReversal(rev, req *codec.Message) error {
	return adviceOf(rev, req, codec.ClassReversal)
}

// adviceOf makes adv an advice of class (0420 reversal, 0220 completion)
// about req: the request's identifying fields, and field 90 naming it
// (original MTI, STAN, transmission time, acquirer zero padded to 11,
// forwarding institution not given). The advice keeps the request's STAN
// and transmission time, so its own idempotency key is stable however
// often it is retried.
func adviceOf(rev, req *codec.Message, class byte) error {
	mti, ok := req.MTI()
	if !ok {
		return fmt.Errorf("switch: advice of a message without an MTI")
	}
	rev.Reset(req.Dialect())
	if err := rev.SetMTI([4]byte{mti[0], class, '2', '0'}); err != nil {
		return err
	}
	for _, id := range reversalFields {
		if v := req.Get(id); v != nil {
			if err := rev.Set(id, v); err != nil {
				return fmt.Errorf("switch: advice field %d: %w", id, err)
			}
		}
	}
	stan, when, acq := req.Get(11), req.Get(7), req.Get(32)
	if len(stan) != 6 || len(when) != 10 || len(acq) > 11 {
		return fmt.Errorf("switch: advice: the original's STAN, transmission time or acquirer do not fit field 90")
	}
	var f90 [42]byte
	copy(f90[0:4], mti[:])
	copy(f90[4:10], stan)
	copy(f90[10:20], when)
	for i := 20; i < 42; i++ {
		f90[i] = '0'
	}
	copy(f90[31-len(acq):31], acq)
	return rev.Set(90, f90[:])
}
