package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// The pages' files, embedded so that a build from a clean clone serves
// them: templates, our CSS and JS, and the vendored uPlot with its licence.
//
//go:embed templates/*.html static
var files embed.FS

// asset is one static file, served under a name that holds its hash: a
// browser may keep it forever, and a new build changes the name.
type asset struct {
	url         string // /static/<dir>/<base>.<hash><ext>
	contentType string
	body        []byte
	gzipped     []byte // nil when compressing does not pay
}

// assets maps file names (below static/) to their served form.
type assets struct {
	byName map[string]*asset
	byURL  map[string]*asset
}

// loadAssets hashes and compresses every static file once.
func loadAssets() (*assets, error) {
	a := &assets{byName: map[string]*asset{}, byURL: map[string]*asset{}}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := path.Ext(p)
		if ext != ".js" && ext != ".css" && ext != ".svg" {
			return nil // licences and notes are in the source, not served
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		as := &asset{
			url:         "/static/" + strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:5]) + ext,
			contentType: mime.TypeByExtension(ext),
			body:        body,
		}
		if ext == ".svg" {
			as.contentType = "image/svg+xml"
		}
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(body)
		if err := w.Close(); err != nil {
			return err
		}
		if z.Len() < len(body)*9/10 {
			as.gzipped = z.Bytes()
		}
		a.byName[name] = as
		a.byURL[as.url] = as
		return nil
	})
	return a, err
}

// url is the hashed URL of a static file; templates call it as {{asset "app.js"}}.
func (a *assets) url(name string) (string, error) {
	as, ok := a.byName[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return as.url, nil
}

// serve answers /static/...: immutable, compressed when the client takes it.
func (a *assets) serve(c *gin.Context) {
	as, ok := a.byURL[c.Request.URL.Path]
	if !ok {
		c.JSON(http.StatusNotFound, gin.H{"error": "not found"})
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Type", as.contentType)
	h.Add("Vary", "Accept-Encoding")
	body := as.body
	if as.gzipped != nil && strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = as.gzipped
	}
	c.Data(http.StatusOK, as.contentType, body)
}

// compressedSize is what the browser downloads for every static file, for
// the budget test.
func (a *assets) compressedSize() int {
	n := 0
	for _, as := range a.byName {
		if as.gzipped != nil {
			n += len(as.gzipped)
		} else {
			n += len(as.body)
		}
	}
	return n
}
