package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/junction-switch/junction/allinone"
)

const headUsage = `usage: junction head <command> [flags]

The head ledger runs inside 'junction up'; these commands ask it over the
operators' HTTP port (the configuration's http, default 127.0.0.1:9583).

  status    settlement windows (open, closing, closed, settled) and each
            region's merge progress: high-water mark, and for an in-process
            shard its last journal entry
  cutover   close the open settlement window and open the next, now
  gl        the general ledger of a window, summed at one level:
            institution, region, merchant or account
  entries   merged journal entries (detail) by window, date, acquirer or RRN
  settle    clear and settle a closed window: net positions with fees, the
            settlement instruction file and the merchant report
  recon     reconcile a partner's T+1 transaction file against the ledger
  batch     run a batch debit file and write its response file

Run 'junction head <command> -h' for its flags.
`

func headCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, headUsage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("junction head "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "", "configuration file whose http address to use; default: the built-in one")
	addr := fs.String("http", "", "the switch's HTTP address (host:port); default: the configuration's http")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	var (
		query  = url.Values{}
		file   string
		method = http.MethodGet
		path   string
		usage  string
		window *uint
		date   *string
		level  *string
		acq    *string
		rrn    *string
		region *string
		limit  *int
	)
	switch cmd {
	case "status":
		path, usage = "/admin/head/status", "status [-c FILE | --http ADDR]"
	case "cutover":
		method, path, usage = http.MethodPost, "/admin/head/cutover", "cutover [-c FILE | --http ADDR] [--date YYYYMMDD]"
		date = fs.String("date", "", "settlement date of the window opened, YYYYMMDD; default: the closing window's date, or today (UTC) once that has passed")
	case "gl":
		path, usage = "/admin/head/gl", "gl [-c FILE | --http ADDR] --window N [--level institution|region|merchant|account]"
		window = fs.Uint("window", 0, "settlement window number (required)")
		level = fs.String("level", "institution", "roll-up level: institution, region, merchant or account (the detail)")
	case "entries":
		path, usage = "/admin/head/entries", "entries [-c FILE | --http ADDR] [--window N] [--date YYYYMMDD] [--acquirer ID] [--rrn RRN] [--region R] [--limit N]"
		window = fs.Uint("window", 0, "settlement window number")
		date = fs.String("date", "", "UTC date the entries were booked, YYYYMMDD")
		acq = fs.String("acquirer", "", "acquiring institution id (field 32)")
		rrn = fs.String("rrn", "", "retrieval reference number (field 37)")
		region = fs.String("region", "", "region whose shard booked them")
		limit = fs.Int("limit", 100, "at most this many entries")
	case "settle":
		method, path, usage = http.MethodPost, "/admin/head/settle", "settle [-c FILE | --http ADDR] --window N"
		window = fs.Uint("window", 0, "closed settlement window to clear and settle (required)")
	case "recon":
		method, path, usage = http.MethodPost, "/admin/head/recon", "recon [-c FILE | --http ADDR] FILE\n\nFILE is named ORG_DZ_UNIT_YYYYMMDD.txt; flags come before it."
	case "batch":
		method, path, usage = http.MethodPost, "/admin/head/batch", "batch [-c FILE | --http ADDR] FILE\n\nFILE is named ORG_DKKK_UNIT_YYYYMMDD.txt; flags come before it."
	case "-h", "--help", "help":
		fmt.Fprint(stdout, headUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "junction head: unknown command %q\n\n%s", cmd, headUsage)
		return 2
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: junction head %s\n\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	switch {
	case cmd == "recon" || cmd == "batch":
		if fs.NArg() != 1 {
			fs.Usage()
			return 2
		}
		file = fs.Arg(0)
	case fs.NArg() != 0:
		fs.Usage()
		return 2
	}
	if (cmd == "gl" || cmd == "settle") && *window == 0 {
		fmt.Fprintf(stderr, "junction head %s: --window is required\n", cmd)
		return 2
	}
	set := func(key string, v *string) {
		if v != nil && *v != "" {
			query.Set(key, *v)
		}
	}
	if window != nil && *window != 0 {
		query.Set("window", strconv.FormatUint(uint64(*window), 10))
	}
	set("date", date)
	set("level", level)
	set("acquirer", acq)
	set("rrn", rrn)
	set("region", region)
	if limit != nil {
		query.Set("limit", strconv.Itoa(*limit))
	}

	base := *addr
	if base == "" {
		cfg, err := allinone.LoadConfig(*config)
		if err != nil {
			fmt.Fprintf(stderr, "junction head: %v\n", err)
			return 1
		}
		if base = cfg.HTTP; base == "" {
			fmt.Fprintln(stderr, "junction head: the configuration has no http address: give --http")
			return 1
		}
	}
	var body io.Reader
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "junction head %s: %v\n", cmd, err)
			return 1
		}
		body = bytes.NewReader(b)
		query.Set("name", filepath.Base(file))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	u := "http://" + base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		fmt.Fprintf(stderr, "junction head %s: %v\n", cmd, err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "junction head %s: %v (is 'junction up' running with its http port at %s?)\n", cmd, err, base)
		return 1
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Fprintf(stderr, "junction head %s: reading the answer: %v\n", cmd, err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "junction head %s: %s: %s", cmd, resp.Status, out)
		return 1
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = append(pretty.Bytes(), '\n')
	}
	stdout.Write(out)
	return 0
}
