package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moov-io/iso8583/specs"
)

// handWrittenYAML is a small spec as an operator would write it: YAML, field
// numbers unquoted, BCD numbers, binary lengths and a padding on a fixed field.
const handWrittenYAML = `
name: My Bank host
fields:
  0: {type: String, length: 4, enc: BCD, prefix: BCD.Fixed}
  1: {type: Bitmap, length: 8, enc: Binary, prefix: Binary.Fixed}
  2: {type: Numeric, length: 19, enc: BCD, prefix: BCD.LL, description: PAN}
  3: {type: Numeric, length: 6, enc: BCD, prefix: BCD.Fixed, padding: {type: Left, pad: "0"}}
  4: {type: String, length: 12, enc: ASCII, prefix: ASCII.Fixed}
  41: {type: String, length: 8, enc: ASCII, prefix: ASCII.Fixed}
  55: {type: Binary, length: 255, enc: Binary, prefix: Binary.LL}
  102: {type: String, length: 28, enc: ASCII, prefix: ASCII.LL}
`

// smallJSON is a small JSON spec with one field of each kind the loader
// maps, a seed the fuzzer can afford to minimize around.
const smallJSON = `{"fields": {
  "0": {"type": "Numeric", "length": 4, "enc": "ASCII", "prefix": "ASCII.Fixed"},
  "1": {"type": "Bitmap", "length": 8, "enc": "HexToASCII", "prefix": "Hex.Fixed"},
  "2": {"type": "String", "length": 19, "enc": "ASCII", "prefix": "ASCII.LL"},
  "4": {"type": "Numeric", "length": 12, "enc": "ASCII", "prefix": "ASCII.Fixed", "padding": {"type": "Left", "pad": "0"}},
  "22": {"type": "String", "length": 3, "enc": "BCD", "prefix": "BCD.Fixed"},
  "32": {"type": "Numeric", "length": 11, "enc": "BCD", "prefix": "BCD.LLL"},
  "52": {"type": "Hex", "length": 8, "enc": "HexToASCII", "prefix": "Hex.Fixed"},
  "96": {"type": "Binary", "length": 999, "enc": "Binary", "prefix": "Binary.LL"},
  "97": {"type": "String", "length": 17, "enc": "ASCII", "prefix": "BCD.Fixed"}
}}`

// builtinDialects are the dialects the package ships, each exported and
// loaded back by the spec file tests.
func builtinDialects() []*Dialect { return []*Dialect{ISO87ASCII(), ISO87Binary(), ISO93ASCII()} }

// sampleValue is a valid value of field f: exactly its length when fixed,
// n units (at most its maximum) when variable.
func sampleValue(f FieldDef, n int) []byte {
	if f.Prefix == Fixed {
		n = f.Length
	}
	n = min(n, f.Length)
	v := make([]byte, n)
	for i := range v {
		switch f.Class {
		case ClassN:
			v[i] = '0' + byte(i%10)
		case ClassXN:
			v[i] = '0' + byte(i%10)
			if i == 0 {
				v[i] = 'C'
			}
		case ClassB:
			v[i] = byte(i*37 + 0x80)
		default:
			v[i] = 'A' + byte(i%26)
		}
	}
	return v
}

// sampleMessage is a message of d holding every field d defines, each with
// sampleValue(f, n).
func sampleMessage(t testing.TB, d *Dialect, n int) *Message {
	t.Helper()
	m := NewMessage(d)
	v := d.Layout().Version
	if v == 0 {
		v = '0'
	}
	must(t, m.SetMTI([4]byte{v, '2', '0', '0'}))
	for _, f := range d.Fields() {
		must(t, m.Set(f.ID, sampleValue(f, n)))
	}
	return m
}

// behavesTheSame checks that a message with every field of a, at the
// shortest and the longest lengths, packs to the same bytes in a and b, and
// that each dialect unpacks the other's bytes to the same content.
func behavesTheSame(t *testing.T, a, b *Dialect) {
	t.Helper()
	if a.Layout().Version != b.Layout().Version || a.Layout().MTI != b.Layout().MTI || a.Layout().Bitmap != b.Layout().Bitmap {
		t.Fatalf("layout %+v, want %+v", b.Layout(), a.Layout())
	}
	for _, n := range []int{1, MaxFrame} {
		ma := sampleMessage(t, a, n)
		mb := NewMessage(b)
		mti, _ := ma.MTI()
		must(t, mb.SetMTI(mti))
		ma.Each(func(id int, v []byte) { must(t, mb.Set(id, v)) })
		wa, wb := pack(t, ma), pack(t, mb)
		if !bytes.Equal(wa, wb) {
			t.Fatalf("fields of %d units: packs differ:\n got %q\nwant %q", n, wb, wa)
		}
		ua, ub := NewMessage(a), NewMessage(b)
		must(t, ua.Unpack(wb))
		must(t, ub.Unpack(wa))
		sameFields(t, ourFields(ua), ourFields(ma))
		sameFields(t, ourFields(ub), ourFields(ma))
	}
}

func TestExportedSpecLoadsBack(t *testing.T) {
	for _, d := range builtinDialects() {
		opts := SpecOptions{Name: d.Name(), Version: d.Layout().Version}
		t.Run(d.Name(), func(t *testing.T) {
			t.Run("its JSON export loads back with every field's wire layout, name, mask and digit check", func(t *testing.T) {
				raw, err := ExportSpec(d)
				must(t, err)
				loaded, err := LoadSpec(raw, opts)
				must(t, err)
				want := d.Fields()
				got := loaded.Fields()
				if len(got) != len(want) {
					t.Fatalf("%d fields, want %d", len(got), len(want))
				}
				for i, w := range want {
					g := got[i]
					if w.Class != ClassN && w.Class != ClassB {
						// The moov-io format knows Numeric and String only.
						w.Class = ClassANS
					}
					w.NoEcho = false // from the field number, checked in TestISOConventions
					g.NoEcho = false
					if g != w {
						t.Errorf("field %d:\n got %+v\nwant %+v", w.ID, g, w)
					}
				}
			})

			t.Run("it behaves the same as the original when loaded from the JSON export", func(t *testing.T) {
				raw, err := ExportSpec(d)
				must(t, err)
				loaded, err := LoadSpec(raw, opts)
				must(t, err)
				behavesTheSame(t, d, loaded)
			})

			t.Run("it behaves the same as the original when loaded from moov-io's YAML export", func(t *testing.T) {
				raw, err := specs.ExportYAML(d.Spec())
				must(t, err)
				loaded, err := LoadSpec(raw, opts)
				must(t, err)
				behavesTheSame(t, d, loaded)
			})
		})
	}
}

func TestISOConventions(t *testing.T) {
	t.Run("they are the masks and echo rules of the 1987 table", func(t *testing.T) {
		for _, f := range ISO87ASCII().Fields() {
			if m, noEcho := isoConventions(f.ID); m != f.Mask || noEcho != f.NoEcho {
				t.Errorf("field %d: isoConventions gives %d/%v, the table %d/%v", f.ID, m, noEcho, f.Mask, f.NoEcho)
			}
		}
	})
	t.Run("the 1993 table masks the same fields and echoes only 23 and 26 besides", func(t *testing.T) {
		for _, f := range ISO93ASCII().Fields() {
			m, noEcho := isoConventions(f.ID)
			if m != f.Mask {
				t.Errorf("field %d: mask %d, isoConventions %d", f.ID, f.Mask, m)
			}
			if noEcho != f.NoEcho && f.ID != 23 && f.ID != 26 {
				t.Errorf("field %d: NoEcho %v, isoConventions %v", f.ID, f.NoEcho, noEcho)
			}
		}
	})
}

// mutatedSpec is iso87ascii's JSON export after change has edited its
// fields, keyed by field number as in the file.
func mutatedSpec(t *testing.T, change func(fields map[string]map[string]any)) []byte {
	t.Helper()
	raw, err := ExportSpec(ISO87ASCII())
	must(t, err)
	var doc struct {
		Name   string                    `json:"name"`
		Fields map[string]map[string]any `json:"fields"`
	}
	must(t, json.Unmarshal(raw, &doc))
	change(doc.Fields)
	out, err := json.Marshal(doc)
	must(t, err)
	return out
}

func TestLoadSpecRefuses(t *testing.T) {
	type fields = map[string]map[string]any
	cases := []struct {
		name   string
		change func(fields)
		want   string
	}{
		{"track data typed Track2", func(f fields) { f["35"]["type"] = "Track2" },
			"field 35: type Track2 is not supported (use String with ASCII encoding)"},
		{"an EBCDIC field", func(f fields) { f["43"]["enc"] = "EBCDIC" },
			"field 43: encoding EBCDIC is not supported"},
		{"a misspelt encoding", func(f fields) { f["43"]["enc"] = "ACSII" },
			`field 43: unknown encoding "ACSII"`},
		{"a hex length prefix", func(f fields) { f["2"]["prefix"] = "Hex.LL" },
			"field 2: prefix Hex.LL is not supported"},
		{"Hex.Fixed on text", func(f fields) { f["41"]["prefix"] = "Hex.Fixed" },
			`field 41: prefix Hex.Fixed goes with encoding HexToASCII only, not "ASCII"`},
		{"a composite field", func(f fields) {
			f["48"]["type"] = "Composite"
			f["48"]["subfields"] = map[string]any{"1": map[string]any{"type": "String", "length": 2, "enc": "ASCII", "prefix": "ASCII.Fixed"}}
		}, "field 48: composite fields are not supported yet"},
		{"field 65", func(f fields) { f["65"] = f["66"] }, "field 65: bit 65 announces a tertiary bitmap"},
		{"a field above 128", func(f fields) { f["129"] = f["66"] }, "field 129: above 128"},
		{"padding on a variable-length field", func(f fields) { f["2"]["padding"] = map[string]any{"type": "Left", "pad": "0"} },
			"field 2: padding on a variable-length field is not supported"},
		{"a bitmap that never expands", func(f fields) { f["1"]["disableAutoExpand"] = true },
			"field 1: disableAutoExpand is not supported"},
		{"a bitmap in ASCII", func(f fields) { f["1"]["enc"] = "ASCII" }, `field 1: encoding "ASCII"`},
		{"an MTI of two digits", func(f fields) { f["0"]["length"] = 2 }, "field 0: length 2: the MTI has 4 digits"},
		{"a missing MTI", func(f fields) { delete(f, "0") }, "field 0: missing"},
		{"a missing bitmap", func(f fields) { delete(f, "1") }, "field 1: missing"},
		{"binary content typed String", func(f fields) { f["52"]["type"] = "String" },
			"field 52: type String carries text"},
		{"text content typed Binary", func(f fields) { f["41"]["type"] = "Binary" },
			"field 41: type Binary carries bytes"},
		{"a field without a type", func(f fields) { delete(f["41"], "type") }, "field 41: no type"},
		{"a key that is not a field number", func(f fields) { f["x2"] = f["2"] }, `field "x2": not a field number`},
		{"the same field under two keys", func(f fields) { f["02"] = f["2"] }, `field 2: defined twice (as "02" and "2")`},
		{"a length beyond a frame", func(f fields) { f["48"]["length"] = 70000 }, "field 48: length 70000 does not fit a frame"},
		{"a negative length", func(f fields) { f["4"]["length"] = -1 }, "field 4: length -1 must be positive"},
		{"a maximum its prefix cannot carry", func(f fields) { f["2"]["length"] = 100 },
			"field 2: maximum length 100 does not fit a ascii prefix of size 2"},
		{"a misspelt key", func(f fields) { f["2"]["prefx"] = "ASCII.LL" }, `unknown field "prefx"`},
		{"a field without a definition", func(f fields) { f["5"] = nil }, "field 5: empty definition"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			_, err := LoadSpec(mutatedSpec(t, c.change), SpecOptions{Name: "mybank"})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not say %q:\n%v", c.want, err)
			}
			if !strings.Contains(err.Error(), `"mybank"`) {
				t.Fatalf("error does not name the dialect:\n%v", err)
			}
		})
	}

	t.Run("moov-io's shipped spec87ascii is refused for its 16-byte bitmap", func(t *testing.T) {
		raw, err := specs.ExportJSON(specs.Spec87ASCII)
		must(t, err)
		_, err = LoadSpec(raw, SpecOptions{Name: "moov87"})
		if err == nil || !strings.Contains(err.Error(), "field 1: length 16 is one 16-byte bitmap") ||
			!strings.Contains(err.Error(), "which is length 8 in moov-io") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("a spec with three bad fields reports all three", func(t *testing.T) {
		raw := mutatedSpec(t, func(f fields) {
			f["35"]["type"] = "Track2"
			f["43"]["enc"] = "EBCDIC"
			f["2"]["prefix"] = "Hex.LL"
		})
		_, err := LoadSpec(raw, SpecOptions{Name: "mybank"})
		if n := len(flatten(err)); n != 3 {
			t.Fatalf("%d errors, want 3:\n%v", n, err)
		}
		for _, want := range []string{"field 2: ", "field 35: ", "field 43: "} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("no %q in:\n%v", want, err)
			}
		}
	})

	t.Run("a dialect without a name is refused", func(t *testing.T) {
		raw, err := ExportSpec(ISO87ASCII())
		must(t, err)
		if _, err := LoadSpec(raw, SpecOptions{}); err == nil || !strings.Contains(err.Error(), "no dialect name") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("a version that is not a digit is refused", func(t *testing.T) {
		raw, err := ExportSpec(ISO87ASCII())
		must(t, err)
		if _, err := LoadSpec(raw, SpecOptions{Name: "mybank", Version: 'x'}); err == nil || !strings.Contains(err.Error(), "not a digit") {
			t.Fatalf("err = %v", err)
		}
	})

	for _, c := range []struct{ name, input, want string }{
		{"binary garbage", "\x00\x01\x02\xff not a spec", "not a moov-io spec in JSON or YAML"},
		{"plain text", "hello, world", `not a moov-io spec in JSON or YAML: want an object with "fields"`},
		{"an empty file", " \n", "empty spec"},
		{"cut-off JSON", `{"fields": {"0": {"type": "String"`, "not a moov-io JSON spec"},
		{"JSON with trailing data", `{"fields": {}} {}`, "data after the JSON object"},
		{"a spec without fields", `{"name": "x"}`, "no fields"},
	} {
		t.Run(c.name+" is a clear error", func(t *testing.T) {
			_, err := LoadSpec([]byte(c.input), SpecOptions{Name: "mybank"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hello") {
				t.Fatalf("error quotes the input: %v", err)
			}
		})
	}
}

func TestLoadSpecAccepts(t *testing.T) {
	type fields = map[string]map[string]any
	load := func(t *testing.T, change func(fields)) *Dialect {
		t.Helper()
		d, err := LoadSpec(mutatedSpec(t, change), SpecOptions{Name: "mybank", Version: '0'})
		must(t, err)
		return d
	}

	t.Run("padding on a fixed field is ignored: it is already on the wire", func(t *testing.T) {
		d := load(t, func(f fields) { f["41"]["padding"] = map[string]any{"type": "Right", "pad": " "} })
		behavesTheSame(t, ISO87ASCII(), d)
	})

	t.Run("Hex.Fixed with HexToASCII is a fixed field of bytes sent as hex", func(t *testing.T) {
		d := load(t, func(f fields) { f["52"]["prefix"] = "Hex.Fixed" })
		if f, _ := d.Field(52); f.Prefix != Fixed || f.Enc != EncHex || f.Length != 8 || f.Class != ClassB {
			t.Fatalf("field 52: %+v", f)
		}
		behavesTheSame(t, ISO87ASCII(), d)
	})

	t.Run("moov-io's Hex type is binary content", func(t *testing.T) {
		d := load(t, func(f fields) { f["55"]["type"] = "Hex" })
		behavesTheSame(t, ISO87ASCII(), d)
	})

	t.Run("a variable-length Numeric keeps its leading zeros", func(t *testing.T) {
		d := load(t, func(f fields) { f["32"]["type"] = "Numeric" })
		m := NewMessage(d)
		must(t, m.SetMTI([4]byte{'0', '8', '0', '0'}))
		must(t, m.SetString(32, "00012"))
		back := NewMessage(d)
		must(t, back.Unpack(pack(t, m)))
		if string(back.Get(32)) != "00012" {
			t.Fatalf("field 32 = %q", back.Get(32))
		}
	})

	t.Run("a hand-written YAML spec with BCD, binary lengths and unquoted field numbers loads", func(t *testing.T) {
		d, err := LoadSpec([]byte(handWrittenYAML), SpecOptions{Name: "mybank", Version: '0'})
		must(t, err)
		if l := d.Layout(); l.MTI != EncBCD || l.Bitmap != EncBinary {
			t.Fatalf("layout %+v", l)
		}
		if f, _ := d.Field(2); f.Name != "PAN" || f.Mask != MaskCard || f.Prefix != PrefixBCD || f.Class != ClassN {
			t.Fatalf("field 2: %+v", f)
		}
		if f, _ := d.Field(55); f.Prefix != PrefixBinary || f.PrefixSize != 2 || !f.NoEcho || f.Mask != MaskAll {
			t.Fatalf("field 55: %+v", f)
		}
		checkSampleRoundTrip(t, d)
	})
}

func TestLoadSpecFile(t *testing.T) {
	t.Run("a spec file loads", func(t *testing.T) {
		raw, err := ExportSpec(ISO93ASCII())
		must(t, err)
		path := filepath.Join(t.TempDir(), "iso93.json")
		must(t, os.WriteFile(path, raw, 0o600))
		d, err := LoadSpecFile(path, SpecOptions{Name: "iso93copy", Version: '1'})
		must(t, err)
		behavesTheSame(t, ISO93ASCII(), d)
	})

	t.Run("a missing file is named", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "mybank.json")
		_, err := LoadSpecFile(path, SpecOptions{Name: "mybank"})
		if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("every problem in a file names the file", func(t *testing.T) {
		raw := mutatedSpec(t, func(f map[string]map[string]any) {
			f["35"]["type"] = "Track2"
			f["2"]["length"] = 100 // reported by NewDialect
		})
		path := filepath.Join(t.TempDir(), "mybank.json")
		must(t, os.WriteFile(path, raw, 0o600))
		_, err := LoadSpecFile(path, SpecOptions{Name: "mybank"})
		errs := flatten(err)
		if len(errs) != 2 {
			t.Fatalf("%d errors, want 2:\n%v", len(errs), err)
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), path+": ") {
				t.Errorf("does not name the file: %v", e)
			}
		}
	})
}

// checkSampleRoundTrip packs a message holding every field of d with
// minimal valid values, unpacks it, and checks the content survives and
// that moov-io, the reference, reads the same.
func checkSampleRoundTrip(t *testing.T, d *Dialect) {
	t.Helper()
	m := sampleMessage(t, d, 1)
	b := pack(t, m)
	back := NewMessage(d)
	must(t, back.Unpack(b))
	sameFields(t, ourFields(back), ourFields(m))
	got, _, err := moovFields(d, b)
	if err != nil {
		t.Fatalf("moov-io refuses the packed message: %v", err)
	}
	sameFields(t, got, ourFields(m))
}

// FuzzLoadSpec feeds arbitrary spec files to LoadSpec: it must never panic,
// and a dialect it accepts must pack and unpack a message holding every field
// it defines.
func FuzzLoadSpec(f *testing.F) {
	seed := func(raw []byte) {
		if _, err := LoadSpec(raw, SpecOptions{Name: "fuzz"}); err != nil {
			f.Fatalf("seed refused: %v", err) // a refused seed explores nothing
		}
		f.Add(raw)
	}
	for _, d := range builtinDialects() {
		raw, err := ExportSpec(d)
		must(f, err)
		seed(raw)
	}
	yml, err := specs.ExportYAML(ISO87Binary().Spec())
	must(f, err)
	seed(yml)
	// The exports are 20 kB each, slow to minimize around; small seeds let
	// a short run explore too.
	seed([]byte(handWrittenYAML))
	seed([]byte(smallJSON))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := LoadSpec(raw, SpecOptions{Name: "fuzz"})
		if err != nil {
			return
		}
		checkSampleRoundTrip(t, d)
	})
}
