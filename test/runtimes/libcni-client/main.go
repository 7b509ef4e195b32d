// libcni-client drives CNI plugins through libcni, the library containerd, CRI-O, podman and
// kubelet-era runtimes are built on (Debian's golang-github-appc-cni-dev, libcni v1.1.2), the way
// those runtimes do: load a conflist by name from a directory, then ADD, CHECK or DEL it with the
// result cache in a directory of our own. Built offline:
//
//	GOPROXY=off GO111MODULE=off GOPATH=/usr/share/gocode go build -o libcni-client .
//
// Usage:
//
//	libcni-client -confdir DIR -net NAME -path P1:P2 -cache DIR [-netns PATH] [-cid ID]
//	              [-ifname eth0] [-args 'K=V;K2=V2'] [-cap '{"portMappings":[...]}']
//	              [-convert 0.2.0,0.4.0] add|check|del|cached|validate|version
//
// It prints one JSON object on stdout: {"ok":true,...} or {"ok":false,"error":"..."} (exit 1).
// "add" prints the result libcni returned ("result", with "cniVersion") and, with -convert, the
// same result converted by libcni into each listed version ("converted"). "cached" prints the cached
// result as libcni hands it to CHECK and DEL. "validate" runs ValidateNetworkList (every plugin's
// VERSION). CHECK and DEL without -args/-cap replay the cached ones. "version" runs GetVersionInfo for the plugin type given by -net.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

type output struct {
	OK         bool                   `json:"ok"`
	Error      string                 `json:"error,omitempty"`
	List       *listInfo              `json:"list,omitempty"`
	Result     json.RawMessage        `json:"result,omitempty"`
	Converted  map[string]interface{} `json:"converted,omitempty"`
	Caps       []string               `json:"capabilities,omitempty"`
	Supported  []string               `json:"supportedVersions,omitempty"`
	DurationMs int64                  `json:"durationMs"`
}

type listInfo struct {
	Name         string   `json:"name"`
	CNIVersion   string   `json:"cniVersion"`
	DisableCheck bool     `json:"disableCheck"`
	Plugins      []string `json:"plugins"`
}

func main() {
	confDir := flag.String("confdir", "", "directory of conflists")
	netName := flag.String("net", "", "network name (the conflist's \"name\"), or the plugin type for \"version\"")
	pathList := flag.String("path", "", "CNI_PATH, ':'-separated")
	cacheDir := flag.String("cache", "", "libcni result cache directory")
	netns := flag.String("netns", "", "CNI_NETNS")
	cid := flag.String("cid", "libcni-client", "CNI_CONTAINERID")
	ifname := flag.String("ifname", "eth0", "CNI_IFNAME")
	argStr := flag.String("args", "", "CNI_ARGS as K=V;K2=V2")
	capStr := flag.String("cap", "", "capability args, a JSON object")
	convert := flag.String("convert", "", "versions to convert the ADD result into, comma-separated")
	timeout := flag.Duration("timeout", 30*time.Second, "timeout for the whole operation")
	flag.Parse()

	out := output{}
	started := time.Now()
	err := run(&out, flag.Arg(0), *confDir, *netName, *pathList, *cacheDir, *netns, *cid, *ifname, *argStr, *capStr, *convert, *timeout)
	out.DurationMs = time.Since(started).Milliseconds()
	code := 0
	if err != nil {
		out.OK = false
		out.Error = err.Error()
		code = 1
	} else {
		out.OK = true
	}
	enc := json.NewEncoder(os.Stdout)
	if e := enc.Encode(out); e != nil {
		fmt.Fprintf(os.Stderr, "libcni-client: encoding output: %v\n", e)
		code = 2
	}
	os.Exit(code)
}

func run(out *output, cmd, confDir, netName, pathList, cacheDir, netns, cid, ifname, argStr, capStr, convert string, timeout time.Duration) error {
	if cmd == "" {
		return fmt.Errorf("no command: add, check, del, cached, validate or version")
	}
	if cacheDir == "" {
		return fmt.Errorf("-cache is required (never the system's /var/lib/cni)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(pathList, ":"), cacheDir, nil)

	if cmd == "version" {
		info, err := cni.GetVersionInfo(ctx, netName)
		if err != nil {
			return err
		}
		out.Supported = info.SupportedVersions()
		return nil
	}

	list, err := libcni.LoadConfList(confDir, netName)
	if err != nil {
		return err
	}
	out.List = &listInfo{Name: list.Name, CNIVersion: list.CNIVersion, DisableCheck: list.DisableCheck}
	for _, p := range list.Plugins {
		out.List.Plugins = append(out.List.Plugins, p.Network.Type)
	}

	rt := &libcni.RuntimeConf{ContainerID: cid, NetNS: netns, IfName: ifname}
	if argStr != "" {
		for _, kv := range strings.Split(argStr, ";") {
			parts := strings.SplitN(kv, "=", 2)
			if len(parts) != 2 || parts[0] == "" {
				return fmt.Errorf("-args: %q is not K=V", kv)
			}
			rt.Args = append(rt.Args, [2]string{parts[0], parts[1]})
		}
	}
	if capStr != "" {
		if err := json.Unmarshal([]byte(capStr), &rt.CapabilityArgs); err != nil {
			return fmt.Errorf("-cap: %w", err)
		}
	}

	// CHECK and DEL replay what ADD was given (CNI_ARGS and capability args, e.g. the portMappings
	// portmap needs to find its rules again) from libcni's cache, as podman and CRI-O do, unless
	// this call gives its own.
	if (cmd == "check" || cmd == "del") && argStr == "" && capStr == "" {
		if _, cachedRt, err := cni.GetNetworkListCachedConfig(list, rt); err != nil {
			return err
		} else if cachedRt != nil {
			rt = cachedRt
		}
	}

	switch cmd {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		if err := setResult(out, res); err != nil {
			return err
		}
		if convert != "" {
			out.Converted = map[string]interface{}{}
			for _, v := range strings.Split(convert, ",") {
				conv, err := res.GetAsVersion(v)
				if err != nil {
					out.Converted[v] = map[string]string{"error": err.Error()}
					continue
				}
				out.Converted[v] = conv
			}
		}
		return nil
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	case "cached":
		res, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			return err
		}
		if res == nil {
			return nil
		}
		return setResult(out, res)
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			return err
		}
		out.Caps = caps
		if out.Caps == nil {
			out.Caps = []string{}
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func setResult(out *output, res types.Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	out.Result = b
	return nil
}
