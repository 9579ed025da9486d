package codec

import (
	"fmt"
	"io"
	"strings"
)

// Describe writes a human-readable dump of m, one field per line, with
// sensitive fields masked by their definition: a PAN shows at most its first
// six and last four digits; track data, PIN block, ICC data and expiry date
// show only their length. It is meant for people (the CLI, debug logs), not
// for the hot path.
func Describe(w io.Writer, m *Message) error {
	var b strings.Builder
	name := "(no dialect)"
	if m.d != nil {
		name = m.d.Name()
	}
	fmt.Fprintf(&b, "%s  MTI %s\n", name, m.MTIString())
	width := 0
	m.Each(func(id int, _ []byte) {
		if f, ok := m.d.Field(id); ok && len(f.Name) > width {
			width = len(f.Name)
		}
	})
	m.Each(func(id int, v []byte) {
		f, _ := m.d.Field(id)
		fmt.Fprintf(&b, "  %3d  %-*s  %s\n", id, width, f.Name, Show(f, v))
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// Show renders one field's content for people, masked as its definition says.
func Show(f FieldDef, v []byte) string {
	switch f.Mask {
	case MaskCard:
		return MaskPAN(v)
	case MaskAll:
		return fmt.Sprintf("[%d %s masked]", len(v), unit(f))
	}
	if f.Class == ClassB {
		return fmt.Sprintf("%X", v)
	}
	return string(v)
}

func unit(f FieldDef) string {
	if f.Class == ClassB {
		return "bytes"
	}
	return "chars"
}

// MaskPAN shows a card number as its first six and last four digits with the
// rest starred: 6299901100000018 → 629990******0018. Shorter values (an
// account number or telephone number in field 102) show only their last four.
func MaskPAN(pan []byte) string {
	n := len(pan)
	switch {
	case n >= 13:
		return string(pan[:6]) + strings.Repeat("*", n-10) + string(pan[n-4:])
	case n > 4:
		return strings.Repeat("*", n-4) + string(pan[n-4:])
	default:
		return strings.Repeat("*", n)
	}
}
