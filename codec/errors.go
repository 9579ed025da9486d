package codec

import (
	"errors"
	"fmt"
)

// Errors of message decoding and building. They describe what is wrong, never
// the content: an error string may reach a log, and content may be a PAN.
var (
	// ErrShort means the message ends inside the MTI, a bitmap or a field.
	ErrShort = errors.New("codec: message too short")
	// ErrMTI means the first four bytes are not a valid MTI for the dialect.
	ErrMTI = errors.New("codec: invalid MTI")
	// ErrBitmap means a bitmap is not 16 hex characters.
	ErrBitmap = errors.New("codec: invalid bitmap")
	// ErrTrailing means bytes are left over after the last field.
	ErrTrailing = errors.New("codec: trailing bytes after the last field")
	// ErrUndefined means a bitmap names a field the dialect does not define.
	ErrUndefined = errors.New("field not defined by the dialect")
	// ErrLength means a length prefix is not digits, or a length is out of range.
	ErrLength = errors.New("invalid length")
	// ErrContent means content breaks the field's class (a letter in an n field,
	// a control character in an ans field, bad hex).
	ErrContent = errors.New("content does not match the field class")
	// ErrNoDialect means a Message was used before Reset gave it a dialect.
	ErrNoDialect = errors.New("codec: message has no dialect")
)

// FieldError is an error about one field. Error() names the field and the
// reason and never includes the content.
type FieldError struct {
	Field int
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("codec: field %d: %v", e.Field, e.Err) }

func (e *FieldError) Unwrap() error { return e.Err }

// FieldOf returns the field number an error is about, and false when the
// error is not about a single field.
func FieldOf(err error) (int, bool) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, true
	}
	return 0, false
}
