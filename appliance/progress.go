package appliance

import (
	"io"
	"os"
	"strconv"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// terminalProgress draws a one-shot ingest's progress (files and bytes
// done, rate, time left) on w when w is a terminal; elsewhere (a pipe, a
// log file, systemd) it returns nil and the log's "catching up" lines say
// the same at intervals.
func terminalProgress(w io.Writer) (on func(ingest.Progress), finish func()) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	var inFiles bool // the bytes to read are not known (see ingest.Progress): a bar of files
	on = func(p ingest.Progress) {
		if bar == nil {
			inFiles = p.Bytes == 0
			max := p.Bytes
			if inFiles {
				max = int64(p.Files)
			}
			bar = progressbar.NewOptions64(max,
				progressbar.OptionSetWriter(f),
				progressbar.OptionSetDescription("reading transcripts"),
				progressbar.OptionShowBytes(!inFiles),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100_000_000), // redraw at most every 0.1 s
				progressbar.OptionClearOnFinish(),
			)
		}
		if inFiles {
			bar.Describe("reading transcripts (files)")
			_ = bar.Set(p.FilesDone)
			return
		}
		bar.Describe("reading transcripts: " + strconv.Itoa(p.FilesDone) + "/" + strconv.Itoa(p.Files) + " files")
		_ = bar.Set64(p.BytesDone)
	}
	return on, func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
}
