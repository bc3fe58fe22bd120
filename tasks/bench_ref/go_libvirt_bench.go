// Reference figures from digitalocean/go-libvirt (Debian's golang-github-digitalocean-go-libvirt-dev),
// the same measurements as bench_rpc.ts, built and run by that task. Our own harness code.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

func open() *libvirt.Libvirt {
	l := libvirt.NewWithDialer(dialers.NewLocal())
	if err := l.Connect(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return l
}

func meanUs(n int, fn func()) float64 {
	t0 := time.Now()
	for i := 0; i < n; i++ {
		fn()
	}
	return float64(time.Since(t0).Microseconds()) / float64(n)
}

func main() {
	for i := 0; i < 3; i++ {
		open().Disconnect()
	}
	connectUs := meanUs(20, func() { open().Disconnect() })
	l := open()
	defer l.Disconnect()
	for i := 0; i < 500; i++ {
		l.ConnectGetLibVersion()
	}
	rtt := meanUs(2000, func() { l.ConnectGetLibVersion() })
	doms, _, _ := l.ConnectListAllDomains(1, 0)
	list := meanUs(50, func() { l.ConnectListAllDomains(1, 0) })
	seq := meanUs(5, func() {
		for _, d := range doms {
			l.DomainGetInfo(d)
		}
	})
	par := meanUs(5, func() {
		var next int64 = -1
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := atomic.AddInt64(&next, 1)
					if int(i) >= len(doms) {
						return
					}
					l.DomainGetInfo(doms[i])
				}
			}()
		}
		wg.Wait()
	})
	stats := uint32(libvirt.DomainStatsState | libvirt.DomainStatsVCPU | libvirt.DomainStatsBalloon)
	records := 0
	bulk := meanUs(50, func() {
		r, _ := l.ConnectGetAllDomainStats(nil, stats, 0)
		records = len(r)
	})
	out, _ := json.Marshal(map[string]interface{}{
		"connect_us":               connectUs,
		"rtt_us":                   rtt,
		"domains":                  len(doms),
		"list_all_us":              list,
		"per_domain_info_us":       seq,
		"per_domain_info_16way_us": par,
		"bulk_stats_us":            bulk,
		"bulk_stats_records":       records,
	})
	fmt.Println(string(out))
}
