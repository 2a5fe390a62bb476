package main

// The macros of Grafana's ClickHouse datasource, expanded as its backend does
// (github.com/grafana/clickhouse-datasource, pkg/macros/macros.go at commit
// 1d04063a31fb30f9582cd0b3aeaacb7d350b0dcf, Apache-2.0). The plugin's module is
// not served by the Go module proxy, so the expansions are ported here one by
// one, with the same SQL text for the same time range and interval.

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// QueryContext is what a panel query is expanded for: the dashboard's time
// range and the panel's interval.
type QueryContext struct {
	From, To time.Time
	Interval time.Duration
}

func timeToDate(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.Format("2006-01-02")) }

func timeToDateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }

func timeToDateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}

type macro func(ctx QueryContext, args []string) (string, error)

func oneArg(name string, f func(ctx QueryContext, col string) string) macro {
	return func(ctx QueryContext, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("$__%s expected 1 argument(s), received %d", name, len(args))
		}
		return f(ctx, args[0]), nil
	}
}

func noArg(f func(ctx QueryContext) string) macro {
	return func(ctx QueryContext, _ []string) (string, error) { return f(ctx), nil }
}

func dateTimeFilter(ctx QueryContext, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("$__dateTimeFilter expected 2 argument(s), received %d", len(args))
	}
	d, t := args[0], args[1]
	return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
		d, timeToDate(ctx.From), d, timeToDate(ctx.To),
		t, timeToDateTime(ctx.From), t, timeToDateTime(ctx.To)), nil
}

func timeGroup(_ QueryContext, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("$__timeGroup expected 2 argument(s), received %d", len(args))
	}
	d, err := time.ParseDuration(strings.Trim(strings.TrimSpace(args[1]), "'\""))
	if err != nil {
		return "", fmt.Errorf("$__timeGroup: invalid interval %q: %w", args[1], err)
	}
	secs := int64(math.Round(d.Seconds()))
	if secs <= 0 {
		return "", fmt.Errorf("$__timeGroup: interval must be positive, got %q", args[1])
	}
	return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", strings.TrimSpace(args[0]), secs), nil
}

// Macros is the plugin's ClickHouseMacros, less $__table/$__column (which need
// the query builder's context) and the statement macros ($__columns, $__lttb...).
var Macros = map[string]macro{
	"timeFilter": oneArg("timeFilter", func(c QueryContext, col string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, timeToDateTime(c.From), col, timeToDateTime(c.To))
	}),
	"timeFilter_ms": oneArg("timeFilter_ms", func(c QueryContext, col string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, timeToDateTime64(c.From), col, timeToDateTime64(c.To))
	}),
	"dateFilter": oneArg("dateFilter", func(c QueryContext, col string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", col, timeToDate(c.From), col, timeToDate(c.To))
	}),
	"dateTimeFilter": dateTimeFilter,
	"dt":             dateTimeFilter,
	"timeFrom": oneArg("timeFrom", func(c QueryContext, col string) string {
		return fmt.Sprintf("%s >= %s", col, timeToDateTime(c.From))
	}),
	"timeTo": oneArg("timeTo", func(c QueryContext, col string) string {
		return fmt.Sprintf("%s <= %s", col, timeToDateTime(c.To))
	}),
	"fromTime":    noArg(func(c QueryContext) string { return timeToDateTime(c.From) }),
	"toTime":      noArg(func(c QueryContext) string { return timeToDateTime(c.To) }),
	"fromTime_ms": noArg(func(c QueryContext) string { return timeToDateTime64(c.From) }),
	"toTime_ms":   noArg(func(c QueryContext) string { return timeToDateTime64(c.To) }),
	"timeInterval": oneArg("timeInterval", func(c QueryContext, col string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", col, int(math.Max(c.Interval.Seconds(), 1)))
	}),
	"timeInterval_ms": oneArg("timeInterval_ms", func(c QueryContext, col string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", col, int(math.Max(float64(c.Interval.Milliseconds()), 1)))
	}),
	"interval_s":  noArg(func(c QueryContext) string { return fmt.Sprintf("%d", int(math.Max(c.Interval.Seconds(), 1))) }),
	"interval":    noArg(func(c QueryContext) string { return c.Interval.String() }),
	"interval_ms": noArg(func(c QueryContext) string { return fmt.Sprintf("%d", c.Interval.Milliseconds()) }),
	"timeGroup":   timeGroup,
}

// Interpolate expands every $__name and $__name(args) of sql; an unknown macro
// is an error here (the plugin leaves it, and ClickHouse then refuses the SQL).
func Interpolate(sql string, ctx QueryContext) (string, error) {
	var out strings.Builder
	for {
		at := strings.Index(sql, "$__")
		if at < 0 {
			out.WriteString(sql)
			return out.String(), nil
		}
		out.WriteString(sql[:at])
		rest := sql[at+3:]
		end := 0
		for end < len(rest) && (rest[end] == '_' || rest[end] >= 'a' && rest[end] <= 'z' || rest[end] >= 'A' && rest[end] <= 'Z' || rest[end] >= '0' && rest[end] <= '9') {
			end++
		}
		name := rest[:end]
		rest = rest[end:]
		var args []string
		if strings.HasPrefix(rest, "(") {
			depth, close := 0, -1
			for i, c := range rest {
				if c == '(' {
					depth++
				} else if c == ')' {
					depth--
					if depth == 0 {
						close = i
						break
					}
				}
			}
			if close < 0 {
				return "", fmt.Errorf("$__%s: unbalanced parentheses", name)
			}
			inner := rest[1:close]
			rest = rest[close+1:]
			if strings.TrimSpace(inner) != "" {
				for _, a := range splitArgs(inner) {
					args = append(args, strings.TrimSpace(a))
				}
			}
		}
		m, ok := Macros[name]
		if !ok {
			return "", fmt.Errorf("unknown macro $__%s", name)
		}
		text, err := m(ctx, args)
		if err != nil {
			return "", err
		}
		out.WriteString(text)
		sql = rest
	}
}

func splitArgs(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}
