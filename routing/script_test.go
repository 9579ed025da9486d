package routing

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/junction-switch/junction/ledger"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt with what the code gives")

// TestScripts runs the routing scripts in testdata. Each script is a list
// of blocks: a command with its input, a line "----", the expected output,
// and an empty line.
//
//	rules                    the YAML that follows becomes the table
//	route k=v …              one decision: channel, identity, mti, pcode,
//	                         pan, account, amount (decimal), currency
//	explain k=v …            the decision and every rule's verdict
//
// go test ./routing -run Scripts -rewrite writes what the code gives as the
// expected output; review the diff before committing it.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

type block struct {
	comment          []string // lines before the command, kept by -rewrite
	cmd, input, want string
	line             int
}

func runScript(t *testing.T, file string) {
	blocks := readBlocks(t, file)
	var table *Table
	var out strings.Builder
	for i := range blocks {
		b := &blocks[i]
		got := run(t, &table, b)
		if *rewrite {
			b.want = got
		} else if got != b.want {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, b.line, b.cmd, got, b.want)
		}
		for _, c := range b.comment {
			out.WriteString(c + "\n")
		}
		out.WriteString(b.cmd + "\n")
		if b.input != "" {
			out.WriteString(b.input + "\n")
		}
		out.WriteString("----\n" + b.want + "\n\n")
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.TrimSuffix(out.String(), "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readBlocks(t *testing.T, file string) []block {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	var input, want, comment []string
	inWant := false
	sc := bufio.NewScanner(f)
	line := 0
	flush := func() {
		if cur != nil {
			cur.input, cur.want = strings.Join(input, "\n"), strings.Join(want, "\n")
			blocks = append(blocks, *cur)
		}
		cur, input, want, comment, inWant = nil, nil, nil, nil, false
	}
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case cur == nil && l == "":
		case cur == nil && strings.HasPrefix(l, "#"):
			comment = append(comment, l)
		case cur == nil:
			cur = &block{cmd: l, line: line, comment: comment}
		case inWant && l == "":
			flush()
		case inWant:
			want = append(want, l)
		case l == "----":
			inWant = true
		default:
			input = append(input, l)
		}
	}
	flush()
	return blocks
}

func run(t *testing.T, table **Table, b *block) string {
	fields := strings.Fields(b.cmd)
	switch fields[0] {
	case "rules":
		rules, err := ParseRules([]byte(b.input))
		if err != nil {
			return "error: " + err.Error()
		}
		tbl, err := NewTable(rules, nil)
		if err != nil {
			return "error: " + err.Error()
		}
		*table = tbl
		return "ok"
	case "route", "explain":
		if *table == nil {
			return "error: no valid rules yet"
		}
		in, err := scriptInput(fields[1:])
		if err != nil {
			return "error: " + err.Error()
		}
		if fields[0] == "route" {
			return describe((*table).Decide(&in))
		}
		d, verdicts := (*table).Explain(&in)
		lines := []string{describe(d)}
		for _, v := range verdicts {
			mark := " "
			if v.Decided {
				mark = "*"
			}
			lines = append(lines, fmt.Sprintf("%s %s (line %d): %s", mark, v.Rule, v.Line, v.Why))
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("line %d: unknown command %q", b.line, fields[0])
	return ""
}

func scriptInput(args []string) (Input, error) {
	in := Input{MTI: [4]byte{'0', '2', '0', '0'}, Currency: 156}
	amount := ""
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return in, fmt.Errorf("%q: want key=value", a)
		}
		switch k {
		case "channel":
			in.Channel = v
		case "identity":
			in.Identity = v
		case "mti":
			copy(in.MTI[:], v)
		case "pcode":
			in.PCode = []byte(v)
		case "pan":
			in.PAN = []byte(v)
		case "account":
			in.Account = []byte(v)
		case "amount":
			amount = v
		case "currency":
			var c int
			fmt.Sscan(v, &c)
			in.Currency = uint16(c)
		default:
			return in, fmt.Errorf("unknown key %q", k)
		}
	}
	if amount != "" {
		n, err := ledger.ParseAmount(amount, in.Currency)
		if err != nil {
			return in, err
		}
		in.Amount, in.HasAmount = n, true
	}
	return in, nil
}

func describe(d Decision) string {
	switch {
	case d.Index < 0:
		return fmt.Sprintf("no rule: declines %s", d.Decline)
	case d.Decline != "":
		return fmt.Sprintf("%s: declines %s", d.Rule, d.Decline)
	case len(d.Alternates) > 0:
		return fmt.Sprintf("%s: → %s, alternates %s", d.Rule, d.Destination, strings.Join(d.Alternates, ", "))
	}
	return fmt.Sprintf("%s: → %s", d.Rule, d.Destination)
}
