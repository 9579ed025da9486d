package codec

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// ErrConvert is wrapped by the errors of a conversion: a field the
// destination dialect cannot hold, a value a table lacks.
var ErrConvert = errors.New("codec: conversion")

// Rule says where one field of the converted message comes from. A field
// whose source is absent is left out.
type Rule struct {
	Drop    bool   // never set the field
	From    int    // take the content of this source field (0: the same field)
	FromMTI bool   // take the source message's MTI
	Slice   [2]int // keep content[Slice[0]:Slice[1]]; zero keeps it whole
	Const   string // a fixed value
	Derive  string // a value from the conversion's context: see Derivations
	Restore bool   // responses only: the original request's value of this field
	Map     string // translate through this table of the map
	// Otherwise is the value when Map's table lacks the source value.
	Otherwise string
	// Unmapped says what happens to a value the table lacks when there is
	// no Otherwise: "error" (the default), "drop" (try the next
	// alternative, or leave the field out) or "keep" (the value as it is).
	Unmapped string
	// Fit pads or cuts the value to the destination's fixed length: "right"
	// pads with spaces (text), "left" with zeros (numbers); both cut from
	// the end.
	Fit string
}

// Derivations are the names a Rule's Derive may take.
//
//	transmission-time  now, UTC, MMDDhhmmss (field 7)
//	institution        the channel's acquiring institution id (field 32)
//	stan               the outbound leg's STAN, six digits (field 11); none
//	                   when the context has none, so an alternative applies
//	rrn                the outbound leg's RRN (field 37); likewise
//	local-datetime     YYMMDDhhmmss from the source's fields 13 (MMDD) and
//	                   12 (hhmmss), the year the clock's, or the year before
//	                   when MMDD lies ahead of today (1987 → 1993 field 12)
//	settlement-date    YYMMDD from the source's field 15 (MMDD), same year
//	                   rule (1987 → 1993 field 15)
func Derivations() []string {
	return []string{"transmission-time", "institution", "stan", "rrn", "local-datetime", "settlement-date"}
}

// Context is what derived fields come from.
type Context struct {
	Now         time.Time
	Institution string
	STAN        uint32 // the STAN a re-stamping rule gives the outbound leg
	RRN         string // the RRN a re-stamping rule gives the outbound leg
}

// Saved holds what a response conversion needs of its request: the
// original MTI and the fields a Restore rule brings back. It lives on the
// caller's stack or in its in-flight record; it does not allocate.
type Saved struct {
	mti   [4]byte
	vals  [maxKept]struct{ id, n, off uint16 }
	nvals int
	buf   [512]byte
	used  int
}

func (s *Saved) get(id int) ([]byte, bool) {
	for i := range s.nvals {
		if v := &s.vals[i]; int(v.id) == id {
			return s.buf[v.off : v.off+v.n], true
		}
	}
	return nil, false
}

// direction is one way of a map: rules per destination field, each a list
// of alternatives of which the first that yields a value wins.
type direction struct {
	rules    [MaxField + 1][]Rule
	explicit [2]uint64 // fields with a rule of their own
	defined  [2]uint64 // fields the destination defines
	// trusted are fields copied as they are between identical definitions:
	// their content was checked when it was decoded and is not checked again.
	trusted [2]uint64
}

// Map converts messages between two dialects: requests From → To on their
// way to a destination, responses To → From on their way back. Build one
// with NewMap or LoadMap; it is immutable and safe for concurrent use.
type Map struct {
	name     string
	from, to *Dialect
	mti      map[[4]byte][4]byte // request MTI from → to; others swap the version digit
	request  direction
	response direction
	tables   map[string]map[string]string
	restore  [2]uint64 // request fields some response rule restores
}

// MapSpec is a map before validation: what a map file holds.
type MapSpec struct {
	Name string
	// MTI maps request MTIs of From to those of To ("1804" → "0800"); a
	// request MTI not listed keeps its digits with To's version digit.
	MTI map[string]string
	// Request and Response rules, by destination field number: one rule, or
	// alternatives tried in order until one yields a value.
	Request, Response map[int][]Rule
	// CopyOrDrop: fields with no rule are copied when both dialects define
	// them alike, and dropped when they define them differently. Without
	// it, a field defined differently and given no rule is an error: a
	// silent copy is how spec mismatches reach production.
	CopyOrDrop bool
	Tables     map[string]map[string]string
}

// NewMap validates spec against the two dialects, reporting every problem,
// and builds the map.
func NewMap(spec MapSpec, from, to *Dialect) (*Map, error) {
	m := &Map{name: spec.Name, from: from, to: to, mti: map[[4]byte][4]byte{}, tables: spec.Tables}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("codec: map %q: %s", spec.Name, fmt.Sprintf(format, args...)))
	}
	for k, v := range spec.MTI {
		a, b := []byte(k), []byte(v)
		if !from.validMTI(a) || len(a) != 4 || !to.validMTI(b) || len(b) != 4 {
			bad("mti %q → %q: not MTIs of %s and %s", k, v, from.Name(), to.Name())
			continue
		}
		m.mti[[4]byte(a)] = [4]byte(b)
	}
	build := func(dir *direction, rules map[int][]Rule, src, dst *Dialect, name string, response bool) {
		for id, alts := range rules {
			if _, ok := dst.Field(id); !ok {
				bad("%s field %d: %s does not define it", name, id, dst.Name())
				continue
			}
			if len(alts) == 0 {
				bad("%s field %d: no rule", name, id)
				continue
			}
			ok := true
			for _, r := range alts {
				if err := m.checkRule(r, src, response); err != nil {
					bad("%s field %d: %v", name, id, err)
					ok = false
				} else if r.Drop && len(alts) > 1 {
					bad("%s field %d: drop cannot be an alternative", name, id)
					ok = false
				} else if r.Restore {
					w, b := bit(id)
					m.restore[w] |= b
				}
			}
			if !ok {
				continue
			}
			dir.rules[id] = alts
			w, b := bit(id)
			dir.explicit[w] |= b
		}
		for id := 2; id <= MaxField; id++ {
			w, b := bit(id)
			df, inDst := dst.Field(id)
			sf, inSrc := src.Field(id)
			if inDst {
				dir.defined[w] |= b
			}
			if dir.explicit[w]&b != 0 || !inDst || !inSrc {
				continue
			}
			if sameField(&sf, &df) {
				dir.trusted[w] |= b
				continue
			}
			if spec.CopyOrDrop {
				dir.rules[id] = []Rule{{Drop: true}}
				dir.explicit[w] |= b
				continue
			}
			bad("%s field %d: %s and %s define it differently (%s..%d vs %s..%d); give it a rule (drop, fit, slice, map…) or set copy_or_drop",
				name, id, src.Name(), dst.Name(), sf.Class, sf.Length, df.Class, df.Length)
		}
	}
	build(&m.request, spec.Request, from, to, "request", false)
	build(&m.response, spec.Response, to, from, "response", true)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// CopyMap is the map between two dialects of the same layout: every field
// copied, MTIs unchanged. Converting is then re-encoding only.
func CopyMap(from, to *Dialect) (*Map, error) {
	if !from.SameLayout(to) {
		return nil, fmt.Errorf("codec: %s and %s differ in layout: a copy map would lose fields", from.Name(), to.Name())
	}
	return NewMap(MapSpec{Name: from.Name() + "-to-" + to.Name()}, from, to)
}

func sameField(a, b *FieldDef) bool {
	return a.Class.kind() == b.Class.kind() && a.Length == b.Length && (a.Prefix == Fixed) == (b.Prefix == Fixed)
}

func (m *Map) checkRule(r Rule, src *Dialect, response bool) error {
	sources := 0
	for _, set := range []bool{r.From != 0, r.FromMTI, r.Const != "", r.Derive != "", r.Restore} {
		if set {
			sources++
		}
	}
	switch {
	case r.Drop && (sources > 0 || r.Map != "" || r.Fit != ""):
		return errors.New("drop takes no other setting")
	case sources > 1:
		return errors.New("give one source: from, mti, const, derive or restore")
	case r.Restore && !response:
		return errors.New("restore is for responses")
	case r.From != 0:
		if _, ok := src.Field(r.From); !ok {
			return fmt.Errorf("from %d: %s does not define it", r.From, src.Name())
		}
	case r.Derive != "":
		known := false
		for _, d := range Derivations() {
			known = known || d == r.Derive
		}
		if !known {
			return fmt.Errorf("derive %q: want one of %v", r.Derive, Derivations())
		}
	}
	if r.Slice[0] < 0 || r.Slice[1] < r.Slice[0] {
		return fmt.Errorf("slice %v is not a range", r.Slice)
	}
	if r.Map != "" && m.tables[r.Map] == nil {
		return fmt.Errorf("map %q: no such table", r.Map)
	}
	if r.Fit != "" && r.Fit != "left" && r.Fit != "right" {
		return fmt.Errorf("fit %q: want left or right", r.Fit)
	}
	switch r.Unmapped {
	case "", "error", "drop", "keep":
	default:
		return fmt.Errorf("unmapped %q: want error, drop or keep", r.Unmapped)
	}
	return nil
}

// Name is the map's name.
func (m *Map) Name() string { return m.name }

// From and To are the map's dialects.
func (m *Map) From() *Dialect { return m.from }
func (m *Map) To() *Dialect   { return m.to }

// Request converts src (a request of From) into dst (reset to To), saving
// in saved what the response will need back.
func (m *Map) Request(dst, src *Message, ctx *Context, saved *Saved) error {
	mti, ok := src.MTI()
	if !ok {
		return ErrMTI
	}
	saved.mti, saved.nvals, saved.used = mti, 0, 0
	for w := range m.restore {
		for s := m.restore[w] & src.set[w]; s != 0; s &= s - 1 {
			id := w*64 + 63 - bits.TrailingZeros64(s) + 1
			v := src.Get(id)
			if saved.nvals == maxKept || len(saved.buf)-saved.used < len(v) {
				return fmt.Errorf("%w: field %d: too much to restore", ErrConvert, id)
			}
			e := &saved.vals[saved.nvals]
			e.id, e.n, e.off = uint16(id), uint16(len(v)), uint16(saved.used)
			saved.used += copy(saved.buf[saved.used:], v)
			saved.nvals++
		}
	}
	dst.Reset(m.to)
	out, ok := m.mti[mti]
	if !ok {
		out = mti
		if v := m.to.layout.Version; v != 0 {
			out[0] = v
		}
	}
	if err := dst.SetMTI(out); err != nil {
		return fmt.Errorf("%w: MTI %s has no place in %s", ErrConvert, string(mti[:]), m.to.Name())
	}
	return m.fields(&m.request, dst, src, ctx, nil)
}

// Response converts src (the response of To) into dst (reset to From): the
// response MTI of the original request, then every field by its rule.
func (m *Map) Response(dst, src *Message, saved *Saved) error {
	resp, ok := ResponseMTI(saved.mti)
	if !ok {
		return ErrNotRequest
	}
	dst.Reset(m.from)
	dst.mti, dst.hasMTI = resp, true
	return m.fields(&m.response, dst, src, nil, saved)
}

// ResponseCode maps a response code of To into From by the response rule of
// field 39 (for a request the switch answers itself before or instead of
// converting it); codes without a rule pass unchanged.
func (m *Map) ResponseCode(rc string, class byte) string {
	for i := range m.response.rules[39] {
		if r := &m.response.rules[39][i]; r.Map != "" {
			if v, ok, err := m.lookup(r, []byte(rc), class); err == nil && ok {
				return v
			}
		}
	}
	return rc
}

// convBufs are the scratch arrays of one conversion, on its stack: a derived
// or constant value, a mapped value and a fitted value each have their own,
// so that no step appends into its own input.
type convBufs struct {
	made, mapped, fitted [128]byte
}

func (m *Map) fields(dir *direction, dst, src *Message, ctx *Context, saved *Saved) error {
	var bufs convBufs
	for w := range dir.defined {
		for s := (src.set[w] | dir.explicit[w]) & dir.defined[w]; s != 0; {
			lz := bits.LeadingZeros64(s)
			b := uint64(1) << (63 - uint(lz))
			s &^= b
			id := w*64 + lz + 1
			if dir.trusted[w]&b != 0 {
				v := src.Get(id)
				off := len(dst.buf)
				dst.buf = append(dst.buf, v...)
				dst.place(id, off, len(v))
				continue
			}
			v, err := m.value(dir.rules[id], id, dst.d, src, ctx, saved, &bufs)
			if err != nil {
				return fmt.Errorf("%w: field %d: %v", ErrConvert, id, err)
			}
			if v == nil {
				continue
			}
			if err := dst.Set(id, v); err != nil {
				return fmt.Errorf("%w: %w", ErrConvert, err)
			}
		}
	}
	return nil
}

// value runs a field's alternatives and returns the first value one
// yields, or nil when none does.
func (m *Map) value(alts []Rule, id int, dst *Dialect, src *Message, ctx *Context, saved *Saved, bufs *convBufs) ([]byte, error) {
	for i := range alts {
		r := &alts[i]
		if r.Drop {
			return nil, nil
		}
		var v []byte
		switch {
		case r.From != 0:
			v = src.Get(r.From)
		case r.FromMTI:
			v = src.mti[:] // src's own array: a copy of it would escape
		case r.Const != "":
			v = append(bufs.made[:0], r.Const...)
		case r.Restore:
			v, _ = saved.get(id)
		case r.Derive != "":
			var ok bool
			if v, ok = derive(bufs.made[:0], r.Derive, src, ctx); !ok {
				continue
			}
		default: // the same field, sliced, mapped or fitted
			v = src.Get(id)
		}
		if v == nil {
			continue
		}
		if r.Slice != [2]int{} {
			if r.Slice[1] > len(v) {
				return nil, fmt.Errorf("slice %v of %d bytes", r.Slice, len(v))
			}
			v = v[r.Slice[0]:r.Slice[1]]
		}
		if r.Map != "" {
			out, ok, err := m.lookup(r, v, src.mti[1])
			switch {
			case err != nil:
				return nil, err
			case ok:
				v = append(bufs.mapped[:0], out...)
			case r.Unmapped != "keep":
				continue // unmapped and dropped: try the next alternative
			}
		}
		if r.Fit != "" {
			v = fit(bufs.fitted[:0], v, dst.fields[id].Length, r.Fit)
		}
		return v, nil
	}
	return nil, nil
}

// lookup translates v through r's table, trying "class/value" (the MTI
// class digit of the message, so that network management can map 00 to
// 800 while financial messages map it to 000) before "value".
func (m *Map) lookup(r *Rule, v []byte, class byte) (out string, ok bool, err error) {
	t := m.tables[r.Map]
	var key [34]byte
	if len(v) <= 32 {
		if out, ok := t[string(append(append(key[:0], class, '/'), v...))]; ok {
			return out, true, nil
		}
	}
	if out, ok := t[string(v)]; ok {
		return out, true, nil
	}
	switch {
	case r.Otherwise != "":
		return r.Otherwise, true, nil
	case r.Unmapped == "keep", r.Unmapped == "drop":
		return "", false, nil
	}
	return "", false, fmt.Errorf("table %s has no entry for this value", r.Map)
}

// derive computes a derived value into buf; false when its inputs are
// absent.
func derive(buf []byte, name string, src *Message, ctx *Context) ([]byte, bool) {
	if ctx == nil {
		// A response conversion has no context: only what the source
		// message and the clock give can be derived.
		ctx = &Context{Now: time.Now()}
	}
	switch name {
	case "transmission-time":
		return ctx.Now.UTC().AppendFormat(buf, "0102150405"), true
	case "institution":
		return append(buf, ctx.Institution...), ctx.Institution != ""
	case "stan":
		return appendPadded(buf, uint64(ctx.STAN), 6), ctx.STAN != 0
	case "rrn":
		return append(buf, ctx.RRN...), ctx.RRN != ""
	case "local-datetime":
		date, clock := src.Get(13), src.Get(12)
		if len(date) != 4 || len(clock) != 6 {
			return nil, false
		}
		buf = appendPadded(buf, uint64(yearOf(date, ctx.Now)%100), 2)
		return append(append(buf, date...), clock...), true
	case "settlement-date":
		date := src.Get(15)
		if len(date) != 4 {
			return nil, false
		}
		return append(appendPadded(buf, uint64(yearOf(date, ctx.Now)%100), 2), date...), true
	}
	return nil, false
}

// yearOf is the year of a MMDD date near now: this year, or last year when
// the date lies more than a day ahead (a transaction of 31 December
// converted on 1 January).
func yearOf(mmdd []byte, now time.Time) int {
	month, _ := strconv.Atoi(string(mmdd[:2]))
	day, _ := strconv.Atoi(string(mmdd[2:]))
	y := now.Year()
	if time.Date(y, time.Month(month), day, 0, 0, 0, 0, now.Location()).After(now.AddDate(0, 0, 1)) {
		y--
	}
	return y
}

func appendPadded(buf []byte, n uint64, width int) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], n, 10)
	for i := len(s); i < width; i++ {
		buf = append(buf, '0')
	}
	return append(buf, s...)
}

func fit(buf, v []byte, n int, how string) []byte {
	if len(v) >= n {
		return v[:n]
	}
	if how == "left" {
		for i := len(v); i < n; i++ {
			buf = append(buf, '0')
		}
		return append(buf, v...)
	}
	buf = append(buf, v...)
	for len(buf) < n {
		buf = append(buf, ' ')
	}
	return buf
}
