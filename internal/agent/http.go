package agent

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/gyreops/gyre/internal/convention"
)

// httpResource is an Http Resource, with the parameters of Cyclone's Http
// resolver: URL, METHOD, HEADERS, COMPRESS_FILE_NAME, FORM_FILE_KEY and
// DATA_SUBDIR.
type httpResource struct {
	getenv func(string) string
	client *http.Client
}

func newHTTPResource(getenv func(string) string, client *http.Client) (*httpResource, error) {
	if client == nil {
		client = http.DefaultClient
	}
	for _, p := range []string{"URL", "METHOD"} {
		if getenv(p) == "" {
			return nil, fmt.Errorf("http resource: parameter %s is not set", p)
		}
	}
	if getenv("FIND_OPTIONS") != "" {
		return nil, errors.New("http resource: parameter FIND_OPTIONS is not supported by gyre's Http resolver; use DATA_SUBDIR to choose what to send")
	}
	return &httpResource{getenv: getenv, client: client}, nil
}

func (h *httpResource) fetch(context.Context, string) error {
	return errors.New("http resource: pulling is not supported (Cyclone's Http resolver does not pull either)")
}

func (h *httpResource) update(ctx context.Context, dir string) error { return h.fetch(ctx, dir) }

func (h *httpResource) results(string) ([]string, error) { return nil, nil }

// push sends the files under "data/<DATA_SUBDIR>" as one tar file in a
// multipart form, as Cyclone's Http resolver does. Placeholders
// ${METADATA_NAMESPACE}, ${WORKFLOW_NAME}, ${STAGE_NAME} and
// ${WORKFLOWRUN_NAME} in URL are replaced. Any 2xx answer is success.
func (h *httpResource) push(ctx context.Context, data string) error {
	root := filepath.Join(data, h.getenv("DATA_SUBDIR"))
	files, err := regularFiles(root)
	if err != nil {
		return fmt.Errorf("http resource: %w", err)
	}
	if len(files) == 0 {
		return nil // Cyclone's resolver sends nothing when there is nothing
	}
	name := or(h.getenv("COMPRESS_FILE_NAME"), "artifact.tar")
	key := or(h.getenv("FORM_FILE_KEY"), "file")
	target := h.getenv("URL")
	for _, v := range []string{convention.EnvRunNamespace, convention.EnvWorkflowName, convention.EnvStageName, convention.EnvRunName} {
		target = strings.ReplaceAll(target, "${"+v+"}", h.getenv(v))
	}

	body, w := io.Pipe()
	form := multipart.NewWriter(w)
	go func() {
		w.CloseWithError(writeForm(form, key, name, root, files))
	}()
	req, err := http.NewRequestWithContext(ctx, h.getenv("METHOD"), target, body)
	if err != nil {
		_ = body.Close()
		return fmt.Errorf("http resource: %w", err)
	}
	req.Header.Set("Content-Type", form.FormDataContentType())
	for _, hv := range strings.Fields(h.getenv("HEADERS")) {
		k, v, ok := strings.Cut(hv, ":")
		if !ok {
			_ = body.Close()
			return fmt.Errorf("http resource: HEADERS entry %q is not <name>:<value>", hv)
		}
		req.Header.Add(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("http resource: %s %s: %w", req.Method, redact(target), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("http resource: %s %s: status %d: %s", req.Method, redact(target), resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// writeForm writes a multipart form with one file part, the tar of files.
func writeForm(form *multipart.Writer, key, name, root string, files []string) error {
	part, err := form.CreateFormFile(key, name)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(part)
	for _, rel := range files {
		if err := addFile(tw, root, rel); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return form.Close()
}

func addFile(tw *tar.Writer, root, rel string) error {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	hdr, err := tar.FileInfoHeader(info, "")
	if err != nil {
		return err
	}
	hdr.Name = "./" + filepath.ToSlash(rel)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// regularFiles lists the regular files under root, relative to it, in
// lexical order.
func regularFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

// redact drops credentials from a URL before it goes into an error.
func redact(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "***" + raw[i:]
		}
	}
	return raw
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
