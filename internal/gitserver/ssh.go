package gitserver

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer serves the bare repositories under a root over SSH on
// 127.0.0.1, to clients whose public key it was given. It runs the real
// git-upload-pack and git-receive-pack for the path a client asks for.
type SSHServer struct {
	// Addr is host:port of the listener.
	Addr string

	root     string
	hostKey  ssh.Signer
	config   *ssh.ServerConfig
	listener net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// StartSSH serves root over SSH to clients holding one of authorized.
// A fresh ed25519 host key is generated.
func StartSSH(root string, authorized ...ssh.PublicKey) (*SSHServer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	s := &SSHServer{root: root, hostKey: hostKey, conns: map[net.Conn]struct{}{}}
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range authorized {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("public key not authorized")
		},
	}
	s.config.AddHostKey(hostKey)
	if s.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.Addr = s.listener.Addr().String()
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// URL returns the ssh:// URL of the repository at <root>/<repo>.
func (s *SSHServer) URL(repo string) string {
	return "ssh://git@" + s.Addr + "/" + strings.TrimPrefix(repo, "/")
}

// KnownHosts returns a known_hosts line for the server's host key.
func (s *SSHServer) KnownHosts() []byte {
	return []byte(knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.hostKey.PublicKey()) + "\n")
}

// Close stops accepting, drops open connections and waits for them.
func (s *SSHServer) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.listener.Close()
	s.wg.Wait()
}

func (s *SSHServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handleConn(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

func (s *SSHServer) handleConn(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Minute))
	_, chans, reqs, err := ssh.NewServerConn(nc, s.config)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			return
		}
		go s.handleSession(ch, chReqs)
	}
}

func (s *SSHServer) handleSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "env":
			// GIT_PROTOCOL and friends: accepted, ignored.
			_ = req.Reply(true, nil)
		case "exec":
			var payload struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			code := s.exec(ch, payload.Command)
			_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// exec runs "git-upload-pack '<path>'" or "git-receive-pack '<path>'"
// against a repository under root and returns its exit code.
func (s *SSHServer) exec(ch ssh.Channel, command string) int {
	verb, arg, _ := strings.Cut(command, " ")
	if verb != "git-upload-pack" && verb != "git-receive-pack" {
		fmt.Fprintf(ch.Stderr(), "command %q not allowed\n", verb)
		return 1
	}
	repo, err := s.repoPath(arg)
	if err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 1
	}
	cmd := exec.Command("git", strings.TrimPrefix(verb, "git-"), repo)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	// Copy stdin by hand: exec.Cmd would wait for the copy, and a client
	// keeps its side open until it sees the exit status.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 1
	}
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(ch.Stderr(), err)
		return 1
	}
	return 0
}

// repoPath maps the quoted path a client sent to a directory under root,
// refusing paths that climb out.
func (s *SSHServer) repoPath(arg string) (string, error) {
	p := strings.Trim(strings.TrimSpace(arg), `'"`)
	p = strings.TrimPrefix(p, "~/")
	clean := path.Clean("/" + p)
	full := filepath.Join(s.root, filepath.FromSlash(clean))
	if info, err := os.Stat(full); err != nil || !info.IsDir() {
		return "", fmt.Errorf("repository %q not found", p)
	}
	return full, nil
}
