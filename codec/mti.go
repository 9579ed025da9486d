package codec

import (
	"errors"
	"math/bits"
)

// MTI digits, ISO 8583:1987: version, class, function, origin. 0200 is a
// financial request from the acquirer; 0210 its response; 0201 a repeat of it.

// MTI class digits (second digit).
const (
	ClassAuthorization = '1'
	ClassFinancial     = '2'
	ClassFileAction    = '3'
	ClassReversal      = '4'
	ClassReconcile     = '5'
	ClassAdmin         = '6'
	ClassFeeCollection = '7'
	ClassNetwork       = '8'
)

// IsRequest reports whether mti is a request or an advice (function digit 0
// or 2) that expects a response.
func IsRequest(mti [4]byte) bool { return mti[2] == '0' || mti[2] == '2' }

// IsRepeat reports whether mti is a repeat (origin digit 1 or 3): the sender
// did not get an answer to the original and sends it again.
func IsRepeat(mti [4]byte) bool { return mti[3] == '1' || mti[3] == '3' }

// ResponseMTI returns the response MTI for a request or advice: 0200 and
// 0201 give 0210, 0220 gives 0230, 0800 gives 0810. ok is false for
// messages that are not answered.
func ResponseMTI(mti [4]byte) (resp [4]byte, ok bool) {
	if !IsRequest(mti) {
		return mti, false
	}
	resp = mti
	resp[2]++
	resp[3] &^= 1 // a response does not carry the repeat flag
	return resp, true
}

// ErrNotRequest means a message that expects no response was asked for one.
var ErrNotRequest = errors.New("codec: message is not a request or advice")

// InitResponse resets m to the start of req's response: the response MTI
// and every field of req that a response repeats (the dialect's echo rule:
// not expiry, track, PIN, ICC or MAC data, and not the fields only a
// responder sets). The responder then adds 39 and whatever else it answers.
func (m *Message) InitResponse(req *Message) error {
	mti, ok := req.MTI()
	if !ok {
		return ErrMTI
	}
	resp, ok := ResponseMTI(mti)
	if !ok {
		return ErrNotRequest
	}
	m.Reset(req.d)
	m.mti, m.hasMTI = resp, true
	for w := range req.set {
		for s := req.set[w] & req.d.echo[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			s &^= 1 << (63 - uint(lz))
			id := w*64 + lz + 1
			// Same dialect, content already checked: copy without re-checking.
			off := len(m.buf)
			m.buf = append(m.buf, req.Get(id)...)
			m.place(id, off, len(m.buf)-off)
		}
	}
	return nil
}
