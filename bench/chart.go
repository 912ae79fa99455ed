package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	cellW   = 230
	cellH   = 240
	marginX = 20
	headH   = 78
	footH   = 34
)

var targetColors = map[string]string{
	"direct":            "#9aa0a6",
	"haproxy":           "#4e79a7",
	"podpin":            "#f28e2b",
	"podpin-redis":      "#59a14f",
	"podpin-goroutines": "#e15759",
}

// chartRow is one row of small charts: one metric in one layout, one chart
// per workload, each with its own scale.
type chartRow struct {
	processors int
	title      string
	note       string // "lower is better"
	get        func(row) float64
	ratio      string // metric key of the podpin/HAProxy ratio shown per chart
	proxy      bool   // only targets that are proxies
}

// svg draws grouped bars: for each layout and workload, CPU per request of
// each proxy and requests per second of each target.
func (r *report) svg() string {
	var rows []chartRow
	for _, n := range r.layouts {
		rows = append(rows,
			chartRow{n, "Proxy CPU µs per request", "lower is better", func(rw row) float64 { return rw.cpu }, "cpu", true},
			chartRow{n, "Requests per second", "higher is better", func(rw row) float64 { return rw.rps }, "rps", false})
	}
	n := len(r.workloads)
	width := 2*marginX + n*cellW
	height := headH + len(rows)*cellH + footH
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	title := "podpin vs HAProxy"
	if r.res.Suite == suiteTLS {
		title += ": TLS, HTTP/2 and gRPC"
	}
	p(`<text x="%d" y="28" font-size="18" font-weight="bold" fill="#222">%s (medians of %d run(s) of %s)</text>`+"\n",
		marginX, title, r.res.Runs, r.res.Duration)

	// Legend.
	x := marginX
	for _, t := range r.targets {
		p(`<rect x="%d" y="44" width="14" height="14" fill="%s"/>`, x, targetColors[t])
		label := targetLabel(t)
		p(`<text x="%d" y="56" font-size="13" fill="#222">%s</text>`+"\n", x+20, html.EscapeString(label))
		x += 20 + 8*len(label) + 24
	}

	for i, cr := range rows {
		y := headH + i*cellH
		for j, w := range r.workloads {
			r.cell(&b, marginX+j*cellW, y, w, cr)
		}
	}
	p(`<text x="%d" y="%d" font-size="11" fill="#666">CPU per request: utime+stime of the proxy process over the run / requests completed. Each chart has its own scale.</text>`+"\n",
		marginX, height-12)
	p("</svg>\n")
	return b.String()
}

// cell draws one workload's bars for one metric with the top left corner at
// (x, y).
func (r *report) cell(b *strings.Builder, x, y int, w workload, cr chartRow) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	type bar struct {
		target string
		value  float64
	}
	var bars []bar
	rows := r.rows[cr.processors][w.name]
	for _, t := range r.targets {
		rw := rows[t]
		v := cr.get(rw)
		if rw.runs == 0 || (cr.proxy && t == "direct") || v <= 0 || math.IsNaN(v) {
			continue
		}
		bars = append(bars, bar{t, v})
	}
	p(`<text x="%d" y="%d" font-size="14" font-weight="bold" fill="#222">%s, %s</text>`, x+8, y+16, w.name, strings.ToLower(layoutTitle(cr.processors)))
	p(`<text x="%d" y="%d" font-size="11" fill="#555">%s, %s</text>`+"\n", x+8, y+31, cr.title, cr.note)
	if v, ok := rows["podpin"].ratio[cr.ratio]; ok {
		p(`<text x="%d" y="%d" font-size="11" fill="#555">podpin / HAProxy: <tspan font-weight="bold" fill="#222">%.2f×</tspan></text>`+"\n", x+8, y+45, v)
	}
	left, right := x+48, x+cellW-12
	top, bottom := y+62, y+cellH-32
	if len(bars) == 0 {
		p(`<text x="%d" y="%d" font-size="12" fill="#999">no data</text>`+"\n", left+20, (top+bottom)/2)
		return
	}
	maxV := 0.0
	for _, br := range bars {
		maxV = math.Max(maxV, br.value)
	}
	step := niceStep(maxV / 4)
	scaleMax := math.Ceil(maxV*1.12/step) * step
	yOf := func(v float64) float64 { return float64(bottom) - v/scaleMax*float64(bottom-top) }
	for t := 0.0; t <= scaleMax+step/2; t += step {
		yy := yOf(t)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e3e3e3"/>`, left, yy, right, yy)
		p(`<text x="%d" y="%.1f" font-size="10" fill="#777" text-anchor="end">%s</text>`+"\n", left-4, yy+3.5, compact(t))
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", left, bottom, right, bottom)
	slot := float64(right-left) / float64(len(bars))
	bw := math.Min(slot*0.62, 46)
	for k, br := range bars {
		cx := float64(left) + slot*(float64(k)+0.5)
		yy := yOf(br.value)
		p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`,
			cx-bw/2, yy, bw, float64(bottom)-yy, targetColors[br.target], html.EscapeString(targetLabel(br.target)), precise(br.value))
		p(`<text x="%.1f" y="%.1f" font-size="10.5" fill="#222" text-anchor="middle">%s</text>`, cx, yy-4, precise(br.value))
		p(`<text x="%.1f" y="%d" font-size="10.5" fill="#444" text-anchor="middle">%s</text>`+"\n", cx, bottom+14, shortLabel(br.target))
	}
}

func shortLabel(target string) string {
	switch target {
	case "haproxy":
		return "HAProxy"
	case "podpin-redis":
		return "Redis"
	case "podpin-goroutines":
		return "goroutines"
	}
	return target
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= v {
			return m * pow
		}
	}
	return 10 * pow
}

// compact writes an axis label: 40k, 1.5k, 12, 0.5.
func compact(v float64) string {
	switch {
	case v >= 1000:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1000), ".0") + "k"
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// precise writes a bar's value: whole numbers from 100 up, else three
// significant digits.
func precise(v float64) string {
	if v >= 100 {
		return thousands(v)
	}
	return fmt.Sprintf("%.3g", v)
}
