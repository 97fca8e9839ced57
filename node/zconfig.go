package node

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

// This file converts a ZConfig file, the format of ZEO's `runzeo -C
// zeo.conf` and of zc.zrs, into a node configuration (`zrs config
// import`). The syntax follows ZConfig's cfgparser: one item a line,
// sections `<type name>` ... `</type>` (or `<type name/>`), keys `key
// value`, `#` comments at the start of a line only, `%define NAME value`
// with `$NAME`, `${NAME}` and `$$` substitution in values, `$(NAME)` for
// environment variables, `%import package`. Section types, section names,
// keys and substitution names are case-insensitive (ZConfig lowercases
// them).
//
// What it converts:
//
//	<zeo>           address → zeo.listen, read-only → zeo.read_only,
//	                msgpack → zeo.protocol, transaction-timeout → zeo.transaction_timeout
//	<filestorage N> path → storage.path, N (default "1") → storage.name,
//	                read-only → zeo.read_only
//	<zrs N>         replicate-to, replicate-from, keep-alive-delay → replication,
//	                wrapping a <filestorage> (or a <blobstorage> around one)
//	<eventlog>      level → log.level
//
// Everything else is reported as a note naming its line: blobs, pack
// options, quotas, TLS, handlers of <eventlog>, zdaemon's <runner>, other
// storage types, a second storage, unknown options.

// ZConfigNote is something of the source that the import did not carry
// over, or carried over only approximately. Line 0 concerns the whole file.
type ZConfigNote struct {
	Line int
	Text string
}

// ZConfigError is a ZConfig file that cannot be converted: malformed
// syntax, an invalid value, or nothing zrs can serve.
type ZConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ZConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ZConfigOptions tunes ImportZConfig.
type ZConfigOptions struct {
	// LookupEnv resolves $(NAME) references to environment variables; nil
	// makes any such reference an error.
	LookupEnv func(name string) (string, bool)
}

// ZConfigImport is the result of ImportZConfig.
type ZConfigImport struct {
	// HCL is the node configuration, formatted.
	HCL []byte
	// Config is HCL parsed and validated by ParseConfig.
	Config *Config
	// Notes lists what was not carried over, in source order.
	Notes []ZConfigNote
}

// ImportZConfig converts the ZConfig file src (named filename in messages)
// into a node configuration. A malformed or unconvertible file gives a
// *ZConfigError. The generated configuration is checked with ParseConfig;
// if it is rejected, the result (HCL and notes) is returned together with
// the hcl.Diagnostics as the error.
func ImportZConfig(filename string, src []byte, opts ZConfigOptions) (*ZConfigImport, error) {
	p := &zcParser{file: filename, defines: map[string]string{}, lookupEnv: opts.LookupEnv}
	root, err := p.parse(string(src))
	if err != nil {
		return nil, err
	}
	cv := &zcConverter{file: filename}
	if err := cv.convert(root, p.directives); err != nil {
		return nil, err
	}
	res := &ZConfigImport{HCL: cv.out.render(filename), Notes: cv.notes}
	cfg, diags := ParseConfig(filename+" (converted)", res.HCL)
	if diags.HasErrors() {
		return res, diags
	}
	res.Config = cfg
	return res, nil
}

// Format renders a note as "file:line: text".
func (n ZConfigNote) Format(file string) string {
	if n.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", file, n.Line, n.Text)
	}
	return fmt.Sprintf("%s: %s", file, n.Text)
}

// --- parsing ---

type zcKey struct {
	name, value string
	line        int
}

type zcSection struct {
	typ, name string
	line      int
	keys      []zcKey
	sections  []*zcSection
}

type zcDirective struct {
	name, arg string
	line      int
}

var (
	zcKeyValue     = regexp.MustCompile(`^([^\s()]+)\s*(\S.*)?$`)
	zcSectionStart = regexp.MustCompile(`^([^\s()]+)(?:\s+([^\s()]+))?$`)
	zcName         = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
)

type zcParser struct {
	file       string
	line       int
	defines    map[string]string
	lookupEnv  func(string) (string, bool)
	directives []zcDirective
}

func (p *zcParser) errorf(format string, args ...any) error {
	return &ZConfigError{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *zcParser) parse(src string) (*zcSection, error) {
	root := &zcSection{}
	stack := []*zcSection{root}
	for i, raw := range strings.Split(src, "\n") {
		p.line = i + 1
		line := strings.TrimSpace(raw)
		cur := stack[len(stack)-1]
		switch {
		case line == "" || line[0] == '#':
		case strings.HasPrefix(line, "</"):
			if line[len(line)-1] != '>' {
				return nil, p.errorf("malformed section end %q", line)
			}
			if len(stack) == 1 {
				return nil, p.errorf("unexpected section end %q: no section is open", line)
			}
			typ := strings.ToLower(strings.TrimSpace(line[2 : len(line)-1]))
			if typ != cur.typ {
				return nil, p.errorf("unbalanced section end </%s>: the open section is <%s> (line %d)", typ, cur.typ, cur.line)
			}
			stack = stack[:len(stack)-1]
		case line[0] == '<':
			if line[len(line)-1] != '>' {
				return nil, p.errorf("malformed section start %q", line)
			}
			rest := line[1 : len(line)-1]
			empty := strings.HasSuffix(rest, "/")
			rest = strings.TrimRight(strings.TrimSuffix(rest, "/"), " \t")
			m := zcSectionStart.FindStringSubmatch(rest)
			if m == nil {
				return nil, p.errorf("malformed section header %q", line)
			}
			s := &zcSection{typ: strings.ToLower(m[1]), name: strings.ToLower(m[2]), line: p.line}
			cur.sections = append(cur.sections, s)
			if !empty {
				stack = append(stack, s)
			}
		case line[0] == '%':
			if err := p.directive(line[1:]); err != nil {
				return nil, err
			}
		default:
			m := zcKeyValue.FindStringSubmatch(line)
			if m == nil {
				return nil, p.errorf("malformed configuration data %q", line)
			}
			value, err := p.substitute(m[2])
			if err != nil {
				return nil, err
			}
			cur.keys = append(cur.keys, zcKey{name: strings.ToLower(m[1]), value: value, line: p.line})
		}
	}
	if len(stack) > 1 {
		s := stack[len(stack)-1]
		p.line = s.line
		return nil, p.errorf("section <%s> is not closed", s.typ)
	}
	return root, nil
}

func (p *zcParser) directive(rest string) error {
	m := zcKeyValue.FindStringSubmatch(rest)
	if m == nil {
		return p.errorf("missing or unrecognized directive")
	}
	name, arg := m[1], m[2]
	switch name {
	case "define", "import", "include":
	default:
		return p.errorf("unknown directive %%%s", name)
	}
	if arg == "" {
		return p.errorf("missing argument to %%%s", name)
	}
	switch name {
	case "define":
		parts := strings.Fields(arg)
		defName := strings.ToLower(parts[0])
		if zcName.FindString(defName) != defName {
			return p.errorf("%q is not a legal substitution name", parts[0])
		}
		raw := strings.TrimSpace(strings.TrimPrefix(arg, parts[0]))
		value, err := p.substitute(raw)
		if err != nil {
			return err
		}
		if old, ok := p.defines[defName]; ok && old != value {
			return p.errorf("cannot redefine %q", parts[0])
		}
		p.defines[defName] = value
	case "import":
		pkg, err := p.substitute(strings.TrimSpace(arg))
		if err != nil {
			return err
		}
		p.directives = append(p.directives, zcDirective{name: name, arg: pkg, line: p.line})
	case "include":
		return p.errorf("%%include is not supported: paste the included file in its place and import again")
	}
	return nil
}

// substitute expands $NAME, ${NAME}, $(ENV) and $$ as ZConfig does.
func (p *zcParser) substitute(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		if s == "" {
			return "", p.errorf("illegal lone '$' at end of value")
		}
		var name string
		env := false
		switch s[0] {
		case '$':
			b.WriteByte('$')
			s = s[1:]
			continue
		case '{', '(':
			closer := map[byte]byte{'{': '}', '(': ')'}[s[0]]
			env = s[0] == '('
			name = zcName.FindString(s[1:])
			if name == "" {
				return "", p.errorf("'$%c' not followed by a name", s[0])
			}
			if len(s) < len(name)+2 || s[len(name)+1] != closer {
				return "", p.errorf("'$%c%s' not followed by '%c'", s[0], name, closer)
			}
			s = s[len(name)+2:]
		default:
			name = zcName.FindString(s)
			if name == "" {
				return "", p.errorf("'$' not followed by '$' or a name")
			}
			s = s[len(name):]
		}
		if env {
			v, ok := "", false
			if p.lookupEnv != nil {
				v, ok = p.lookupEnv(name)
			}
			if !ok {
				return "", p.errorf("environment variable %q referenced by $(%s) is not set", name, name)
			}
			b.WriteString(v)
			continue
		}
		v, ok := p.defines[strings.ToLower(name)]
		if !ok {
			return "", p.errorf("$%s is not defined (use %%define %s VALUE before this line)", name, name)
		}
		b.WriteString(v)
	}
}

// --- conversion ---

// zcOutput is the configuration being built.
type zcOutput struct {
	storagePath, storageName    string
	listen                      string
	readOnly, readOnlySet       bool
	protocol                    string
	txnTimeout                  string
	logLevel                    string
	replTo, replFrom, keepAlive string
}

type zcConverter struct {
	file  string
	out   zcOutput
	notes []ZConfigNote
	// storage is the section whose file storage was converted.
	storage *zcSection
}

func (c *zcConverter) note(line int, format string, args ...any) {
	c.notes = append(c.notes, ZConfigNote{Line: line, Text: fmt.Sprintf(format, args...)})
}

func (c *zcConverter) errorf(line int, format string, args ...any) error {
	return &ZConfigError{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// zcImportsKnown are packages whose %import needs no counterpart: their
// schemas are built into zrs or what they define is reported by section.
var zcImportsKnown = map[string]bool{"zc.zrs": true, "zeo": true, "zodb": true}

func (c *zcConverter) convert(root *zcSection, directives []zcDirective) error {
	for _, d := range directives {
		if !zcImportsKnown[strings.ToLower(d.arg)] {
			c.note(d.line, "%%import %s: not carried over; zrs serves FileStorage only, so storage types from that package cannot be converted", d.arg)
		}
	}
	for _, k := range root.keys {
		c.note(k.line, "%s: unknown top-level option, not carried over", k.name)
	}
	var zeo *zcSection
	for _, s := range root.sections {
		switch s.typ {
		case "zeo":
			if zeo != nil {
				return c.errorf(s.line, "a second <zeo> section (the first is on line %d)", zeo.line)
			}
			zeo = s
			if err := c.convertZEO(s); err != nil {
				return err
			}
		case "eventlog":
			if err := c.convertEventlog(s); err != nil {
				return err
			}
		case "runner":
			c.note(s.line, "<runner>: zdaemon's section not carried over; run zrs under systemd instead (examples/zrs.service)")
		default:
			// In ZEO's schema every other top-level section is a storage.
			if err := c.convertTopStorage(s); err != nil {
				return err
			}
		}
	}
	if c.storage == nil {
		return c.errorf(0, "no <filestorage> section found (at top level, or inside <zrs> or <blobstorage>): a zrs node serves one FileStorage")
	}
	sort.SliceStable(c.notes, func(i, j int) bool { return c.notes[i].Line < c.notes[j].Line })
	if zeo == nil {
		c.out.listen = "127.0.0.1:8100"
		c.note(0, "no <zeo> section: zeo.listen set to 127.0.0.1:8100; change it to the address clients use")
	}
	return nil
}

func (c *zcConverter) convertTopStorage(s *zcSection) error {
	name := s.name
	if name == "" {
		name = "1"
	}
	if c.storage != nil {
		c.note(s.line, "<%s %s>: not converted: a zrs node serves one storage (storage %q from line %d is converted); run another node for this one",
			s.typ, name, c.out.storageName, c.storage.line)
		return nil
	}
	ok, err := c.convertStorage(s, false)
	if err != nil || !ok {
		return err
	}
	c.storage = s
	c.out.storageName = name
	return nil
}

// convertStorage converts a storage section, reporting whether it found a
// file storage in it.
func (c *zcConverter) convertStorage(s *zcSection, inZRS bool) (bool, error) {
	switch s.typ {
	case "filestorage":
		return true, c.convertFileStorage(s)
	case "zrs":
		if inZRS {
			c.note(s.line, "<zrs> inside <zrs>: not converted")
			return false, nil
		}
		return c.convertZRS(s)
	case "blobstorage":
		for _, k := range s.keys {
			switch k.name {
			case "blob-dir":
				c.note(k.line, "<blobstorage> blob-dir %s: not carried over: zrs does not serve blobs; the file storage inside is converted without them", k.value)
			default:
				c.note(k.line, "<blobstorage> %s: unknown option, not carried over", k.name)
			}
		}
		base, err := c.base(s)
		if err != nil {
			return false, err
		}
		return c.convertStorage(base, inZRS)
	default:
		c.note(s.line, "<%s>: not converted: zrs serves FileStorage only", s.typ)
		return false, nil
	}
}

// base returns the one storage section a wrapping storage holds.
func (c *zcConverter) base(s *zcSection) (*zcSection, error) {
	if len(s.sections) != 1 {
		return nil, c.errorf(s.line, "<%s> must hold exactly one storage section, found %d", s.typ, len(s.sections))
	}
	return s.sections[0], nil
}

func (c *zcConverter) convertFileStorage(s *zcSection) error {
	for _, sub := range s.sections {
		c.note(sub.line, "<%s> inside <filestorage>: not carried over", sub.typ)
	}
	for _, k := range s.keys {
		switch k.name {
		case "path":
			if k.value == "" {
				return c.errorf(k.line, "<filestorage> path is empty")
			}
			c.out.storagePath = k.value
			if strings.HasPrefix(k.value, "~") {
				c.note(k.line, "<filestorage> path %s: zrs does not expand '~'; give an absolute path", k.value)
			}
		case "read-only":
			b, err := c.boolean(k)
			if err != nil {
				return err
			}
			if b {
				c.out.readOnly, c.out.readOnlySet = true, true
			}
		case "create":
			b, err := c.boolean(k)
			if err != nil {
				return err
			}
			if b {
				c.note(k.line, "<filestorage> create true: not carried over: zrs never truncates a data file (remove the file to start empty)")
			}
		case "blob-dir":
			if k.value != "" {
				c.note(k.line, "<filestorage> blob-dir %s: not carried over: zrs does not serve blobs", k.value)
			}
		case "quota", "packer", "pack-gc", "pack-keep-old":
			c.note(k.line, "<filestorage> %s %s: not carried over: zrs has no such setting", k.name, k.value)
		default:
			c.note(k.line, "<filestorage> %s: unknown option, not carried over", k.name)
		}
	}
	if c.out.storagePath == "" {
		return c.errorf(s.line, "<filestorage> has no path")
	}
	return nil
}

func (c *zcConverter) convertZRS(s *zcSection) (bool, error) {
	var zrsOut struct{ to, from, keepAlive string }
	for _, k := range s.keys {
		switch k.name {
		case "replicate-to":
			addr, err := zconfigAddress(k.value, "0.0.0.0")
			if err != nil {
				return false, c.errorf(k.line, "<zrs> replicate-to: %v", err)
			}
			zrsOut.to = addr
		case "replicate-from":
			addr, err := zconfigAddress(k.value, "127.0.0.1")
			if err != nil {
				return false, c.errorf(k.line, "<zrs> replicate-from: %v", err)
			}
			zrsOut.from = addr
		case "keep-alive-delay":
			n, err := strconv.Atoi(strings.TrimSpace(k.value))
			if err != nil || n < 0 {
				return false, c.errorf(k.line, "<zrs> keep-alive-delay %q is not a whole number of seconds", k.value)
			}
			if n == 0 {
				c.note(k.line, "<zrs> keep-alive-delay 0: not carried over: zrs always sends keep-alives (every 60s unless set)")
			} else {
				zrsOut.keepAlive = fmt.Sprintf("%ds", n)
			}
		case "check-checksums":
			b, err := c.boolean(k)
			if err != nil {
				return false, err
			}
			if !b {
				c.note(k.line, "<zrs> check-checksums false: not carried over: zrs always verifies what it replicates")
			}
		case "zookeeper", "replicate-from-zookeeper":
			c.note(k.line, "<zrs> %s: not carried over: zrs's ZooKeeper mode is configured with zookeeper, failover and advertise blocks (see README, \"ZooKeeper mode\")", k.name)
		default:
			c.note(k.line, "<zrs> %s: unknown option, not carried over", k.name)
		}
	}
	base, err := c.base(s)
	if err != nil {
		return false, err
	}
	ok, err := c.convertStorage(base, true)
	if err != nil || !ok {
		return ok, err
	}
	if zrsOut.to == "" && zrsOut.from == "" {
		c.note(s.line, "<zrs> has neither replicate-to nor replicate-from: converted as a plain storage")
		return true, nil
	}
	c.out.replTo, c.out.replFrom, c.out.keepAlive = zrsOut.to, zrsOut.from, zrsOut.keepAlive
	return true, nil
}

func (c *zcConverter) convertZEO(s *zcSection) error {
	for _, sub := range s.sections {
		if sub.typ == "ssl" {
			c.note(sub.line, "<ssl>: not carried over: zrs serves ZEO without TLS (put a TLS proxy or a private network in front)")
		} else {
			c.note(sub.line, "<%s> inside <zeo>: not carried over", sub.typ)
		}
	}
	for _, k := range s.keys {
		switch k.name {
		case "address":
			addr, err := zconfigAddress(k.value, "0.0.0.0")
			if err != nil {
				return c.errorf(k.line, "<zeo> address: %v", err)
			}
			c.out.listen = addr
		case "read-only":
			b, err := c.boolean(k)
			if err != nil {
				return err
			}
			c.out.readOnly = c.out.readOnly || b
			c.out.readOnlySet = true
		case "msgpack":
			b, err := c.boolean(k)
			if err != nil {
				return err
			}
			c.out.protocol = ProtocolPickle
			if b {
				c.out.protocol = ProtocolMsgpack
			}
		case "transaction-timeout":
			n, err := strconv.Atoi(strings.TrimSpace(k.value))
			if err != nil || n < 0 {
				return c.errorf(k.line, "<zeo> transaction-timeout %q is not a whole number of seconds", k.value)
			}
			if n > 0 {
				c.out.txnTimeout = fmt.Sprintf("%ds", n)
			}
		case "client-conflict-resolution":
			b, err := c.boolean(k)
			if err != nil {
				return err
			}
			if b {
				c.note(k.line, "<zeo> client-conflict-resolution true: not carried over: zrs does not offer it; conflicts are returned to clients")
			}
		case "invalidation-queue-size", "invalidation-age":
			c.note(k.line, "<zeo> %s %s: not carried over: zrs has no such setting (it answers cache verification from the data file)", k.name, k.value)
		case "pack-gc", "pack-keep-old":
			c.note(k.line, "<zeo> %s %s: not carried over: zrs has no such setting (ZEO takes it in <filestorage>)", k.name, k.value)
		case "pid-filename":
			c.note(k.line, "<zeo> pid-filename: not carried over: zrs writes no pid file (systemd tracks the process)")
		case "monitor-address":
			c.note(k.line, "<zeo> monitor-address: not carried over: use the http block's /status and /metrics instead")
		case "authentication-protocol", "authentication-database", "authentication-realm":
			c.note(k.line, "<zeo> %s: not carried over: zrs has no ZEO authentication (ZEO 5 dropped it too)", k.name)
		default:
			c.note(k.line, "<zeo> %s: unknown option, not carried over", k.name)
		}
	}
	if c.out.listen == "" {
		return c.errorf(s.line, "<zeo> has no address")
	}
	return nil
}

// zconfigLevels maps ZConfig's logging level names to zrs's, and whether
// the mapping is exact.
var zconfigLevels = map[string]struct {
	level string
	exact bool
}{
	"critical": {"error", false}, "fatal": {"error", false}, "error": {"error", true},
	"warn": {"warn", true}, "warning": {"warn", true}, "info": {"info", true},
	"blather": {"debug", false}, "debug": {"debug", true}, "trace": {"trace", true},
	"all": {"trace", false}, "notset": {"trace", false},
}

func (c *zcConverter) convertEventlog(s *zcSection) error {
	for _, k := range s.keys {
		if k.name != "level" {
			c.note(k.line, "<eventlog> %s: not carried over", k.name)
			continue
		}
		v := strings.ToLower(strings.TrimSpace(k.value))
		m, ok := zconfigLevels[v]
		if !ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 50 {
				return c.errorf(k.line, "<eventlog> level %q is not a logging level", k.value)
			}
			switch {
			case n >= 40:
				m.level = "error"
			case n >= 30:
				m.level = "warn"
			case n >= 20:
				m.level = "info"
			case n >= 10:
				m.level = "debug"
			default:
				m.level = "trace"
			}
			m.exact = n == 40 || n == 30 || n == 20 || n == 10 || n == 5
		}
		if !m.exact {
			c.note(k.line, "<eventlog> level %s: approximated as %q", k.value, m.level)
		}
		c.out.logLevel = m.level
	}
	for _, h := range s.sections {
		what := "<" + h.typ + ">"
		for _, k := range h.keys {
			if k.name == "path" {
				what += " " + k.value
			}
		}
		c.note(h.line, "<eventlog> handler %s: not carried over: zrs logs to stderr (the journal under systemd; log { json = true } for machines)", what)
	}
	return nil
}

func (c *zcConverter) boolean(k zcKey) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(k.value)) {
	case "yes", "true", "on":
		return true, nil
	case "no", "false", "off":
		return false, nil
	}
	return false, c.errorf(k.line, "%s: %q is not a boolean (true, false, yes, no, on, off)", k.name, k.value)
}

// zconfigAddress converts a ZConfig socket address (a Unix socket path
// with a slash, "port", ":port", "host:port" or "[v6]:port") to host:port,
// giving defaultHost where the host is omitted. Hosts are lowercased as
// ZConfig does.
func zconfigAddress(s, defaultHost string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		return s, nil
	}
	host, port := "", ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		switch {
		case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
			host = host[1 : len(host)-1]
		case strings.Contains(host, ":"):
			// An IPv6 address without brackets has no port.
			host, port = s, ""
		}
	} else if _, err := strconv.Atoi(s); err == nil {
		port = s
	} else {
		host = s
	}
	if port == "" {
		return "", fmt.Errorf("%q has no port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 0xffff {
		return "", fmt.Errorf("%q: %q is not a port number", s, port)
	}
	if host == "" {
		host = defaultHost
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// --- output ---

func (o *zcOutput) render(source string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Converted from %s by `zrs config import`; check the notes it printed.\n", source)
	b.WriteString("# name defaults to the host name; set it if that is not unique.\n")
	b.WriteString("storage {\n")
	fmt.Fprintf(&b, "path = %s\n", QuoteHCL(o.storagePath))
	fmt.Fprintf(&b, "name = %s\n", QuoteHCL(o.storageName))
	b.WriteString("}\n")
	b.WriteString("zeo {\n")
	fmt.Fprintf(&b, "listen = %s\n", QuoteHCL(o.listen))
	if o.readOnlySet {
		fmt.Fprintf(&b, "read_only = %t\n", o.readOnly)
	}
	if o.protocol != "" {
		fmt.Fprintf(&b, "protocol = %s\n", QuoteHCL(o.protocol))
	}
	if o.txnTimeout != "" {
		fmt.Fprintf(&b, "transaction_timeout = %s\n", QuoteHCL(o.txnTimeout))
	}
	b.WriteString("}\n")
	if o.logLevel != "" {
		fmt.Fprintf(&b, "log {\nlevel = %s\n}\n", QuoteHCL(o.logLevel))
	}
	if o.replTo != "" || o.replFrom != "" {
		b.WriteString("replication {\n")
		if o.replTo != "" {
			fmt.Fprintf(&b, "replicate_to = %s\n", QuoteHCL(o.replTo))
		}
		if o.replFrom != "" {
			fmt.Fprintf(&b, "replicate_from = %s\n", QuoteHCL(o.replFrom))
		}
		if o.keepAlive != "" {
			fmt.Fprintf(&b, "keep_alive_delay = %s\n", QuoteHCL(o.keepAlive))
		}
		if o.replFrom != "" {
			b.WriteString("# zc.zrs's stream: a stock zc.zrs primary and a zrs primary both serve it.\n")
			b.WriteString("# Use \"zrs\" once the upstream runs zrs.\n")
			fmt.Fprintf(&b, "protocol = %s\n", QuoteHCL(ReplicationZRS20))
		}
		b.WriteString("}\n")
	}
	return hclwrite.Format([]byte(b.String()))
}

// QuoteHCL returns s as an HCL string literal, with template sequences
// escaped so that the value is taken literally: for writing configuration
// files.
func QuoteHCL(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$', '%':
			b.WriteByte(ch)
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte(ch)
			}
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
	return b.String()
}
