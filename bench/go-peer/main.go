// Command go-peer measures golang.org/x/oauth2 next to tokenkeeper for bench/run:
// clientcredentials.Config behind oauth2.ReuseTokenSource, the way Go services cache
// a client-credentials token. It talks to a running tokenkeeper development server
// and prints "RESULT go <metric> <value>" lines, the format of the Rust harness.
//
//	go-peer -server URL hot [-millis MS]
//	go-peer -server URL economy [-sizes 10,100,1000,10000]
//	go-peer -server URL storm [-requests 1000]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// batch: timing a ~50 ns call alone would measure the timer, so each sample is the
// mean of one batch of calls (as in the Rust harness).
const batch = 256

var (
	server   = flag.String("server", "", "development server base URL")
	millis   = flag.Int("millis", 2000, "hot path: measuring time per case")
	sizes    = flag.String("sizes", "10,100,1000,10000", "economy: caller counts")
	requests = flag.Int("requests", 1000, "storm: requests in flight")
	// One tuned client for everything, so 1,000 requests in flight reuse connections.
	httpClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 20000, MaxIdleConnsPerHost: 20000}}
)

func report(metric string, value float64) { fmt.Printf("RESULT go %s %.3f\n", metric, value) }

func quantile(samples []float64, q float64) float64 {
	sort.Float64s(samples)
	rank := int(q*float64(len(samples)) + 0.999999)
	rank = max(1, min(rank, len(samples)))
	return samples[rank-1]
}

func millisOf(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Nanoseconds()) / 1e6
	}
	return out
}

func config() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "demo-client", ClientSecret: "demo-secret", TokenURL: *server + "/oauth2/token"}
}

func ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, httpClient)
}

func newSource() oauth2.TokenSource { return oauth2.ReuseTokenSource(nil, config().TokenSource(ctx())) }

func tokenRequests() float64 {
	resp, err := httpClient.Get(*server + "/_admin/stats")
	check(err)
	defer resp.Body.Close()
	var stats struct {
		TokenRequests float64 `json:"token_requests"`
	}
	check(json.NewDecoder(resp.Body).Decode(&stats))
	return stats.TokenRequests
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-peer:", err)
		os.Exit(1)
	}
}

// hot: the cached Token() on 1 and 2 goroutines at once.
func hot() {
	ts := newSource()
	_, err := ts.Token()
	check(err)
	run := func(d time.Duration) ([]float64, int) {
		var samples []float64
		start := time.Now()
		for time.Since(start) < d {
			t0 := time.Now()
			for i := 0; i < batch; i++ {
				if _, err := ts.Token(); err != nil {
					check(err)
				}
			}
			samples = append(samples, float64(time.Since(t0).Nanoseconds())/batch)
		}
		return samples, len(samples) * batch
	}
	d := time.Duration(*millis) * time.Millisecond
	run(d / 10) // warm-up
	var throughput [2]float64
	for threads := 1; threads <= 2; threads++ {
		var mu sync.Mutex
		var all []float64
		calls := 0
		var wg sync.WaitGroup
		start := time.Now()
		for g := 0; g < threads; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, n := run(d)
				mu.Lock()
				all, calls = append(all, s...), calls+n
				mu.Unlock()
			}()
		}
		wg.Wait()
		throughput[threads-1] = float64(calls) / time.Since(start).Seconds()
		report(fmt.Sprintf("hot.t%d.median_ns", threads), quantile(all, 0.5))
		report(fmt.Sprintf("hot.t%d.p99_ns", threads), quantile(all, 0.99))
	}
	report("hot.t2_speedup", throughput[1]/throughput[0])
}

// callers starts n goroutines at once, each calling ts.Token(), and returns their
// waits. All are parked behind a gate first (as in the Rust harness).
func callers(n int, ts oauth2.TokenSource) []time.Duration {
	waits := make([]time.Duration, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range waits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			_, err := ts.Token()
			check(err)
			waits[i] = time.Since(t0)
		}()
	}
	close(gate)
	wg.Wait()
	return waits
}

// economy: n callers on an empty source, and on one holding a token inside
// x/oauth2's 10-second expiry margin (it refreshes inline, under its mutex).
func economy() {
	for _, field := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(field)
		check(err)
		for _, mode := range []string{"empty", "expiring"} {
			var initial *oauth2.Token
			if mode == "expiring" {
				t, err := config().Token(ctx())
				check(err)
				t.Expiry = time.Now().Add(5 * time.Second)
				initial = t
			}
			ts := oauth2.ReuseTokenSource(initial, config().TokenSource(ctx()))
			before := tokenRequests()
			waits := millisOf(callers(n, ts))
			label := fmt.Sprintf("economy.%s.n%d", mode, n)
			report(label+".token_requests", tokenRequests()-before)
			report(label+".p50_ms", quantile(waits, 0.5))
			report(label+".p99_ms", quantile(waits, 0.99))
			report(label+".max_ms", quantile(waits, 1))
		}
	}
}

// source is the app's shared token source. ReuseTokenSource cannot be told that its
// token was revoked, so after a 401 the app replaces it with a new one and retries
// once: the usual Go answer.
type source struct {
	mu sync.Mutex
	ts oauth2.TokenSource
}

func (s *source) get() oauth2.TokenSource { s.mu.Lock(); defer s.mu.Unlock(); return s.ts }
func (s *source) renew()                  { s.mu.Lock(); s.ts = newSource(); s.mu.Unlock() }

// send makes one request; on a 401 it renews the source and retries once. It takes
// its token, then waits until every request of the burst has one (ready), so in a
// storm all go out with the revoked token. latency runs from the first send;
// recovery is the wait from the 401 to a usable token (zero when there was none).
func send(s *source, ready *sync.WaitGroup) (status int, latency, recovery time.Duration, err error) {
	do := func(t *oauth2.Token) (int, error) {
		req, _ := http.NewRequest("GET", *server+"/api/data", nil)
		t.SetAuthHeader(req)
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	t, err := s.get().Token()
	ready.Done()
	ready.Wait()
	if err != nil {
		return 0, 0, 0, err
	}
	sent := time.Now()
	status, err = do(t)
	if err != nil || status != http.StatusUnauthorized {
		return status, time.Since(sent), 0, err
	}
	t0 := time.Now()
	s.renew()
	if t, err = s.get().Token(); err != nil {
		return 0, 0, 0, err
	}
	recovery = time.Since(t0)
	status, err = do(t)
	return status, time.Since(sent), recovery, err
}

// burst sends n requests at once: their latencies, the recovery waits, failures.
func burst(n int, s *source) (latencies, recoveries []time.Duration, failed int) {
	var ready, done sync.WaitGroup
	ready.Add(n)
	results := make([]struct {
		latency, recovery time.Duration
		ok                bool
	}, n)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			status, latency, recovery, err := send(s, &ready)
			results[i].latency, results[i].recovery, results[i].ok = latency, recovery, err == nil && status == 200
		}()
	}
	done.Wait()
	for _, r := range results {
		switch {
		case !r.ok:
			failed++
		case r.recovery > 0:
			latencies, recoveries = append(latencies, r.latency), append(recoveries, r.recovery)
		default:
			latencies = append(latencies, r.latency)
		}
	}
	return latencies, recoveries, failed
}

func storm() {
	var rtts []time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		_, err := config().Token(ctx())
		check(err)
		rtts = append(rtts, time.Since(t0))
	}
	rtt := quantile(millisOf(rtts), 0.5)
	s := &source{ts: newSource()}
	t, err := s.get().Token()
	check(err)
	burst(*requests, s) // opens the connections, so both timed bursts find them warm
	valid, _, _ := burst(*requests, s)
	resp, err := httpClient.PostForm(*server+"/_admin/revoke-token?token="+url.QueryEscape(t.AccessToken), nil)
	check(err)
	resp.Body.Close()
	before := tokenRequests()
	stormed, recoveries, failed := burst(*requests, s)
	recoveryP99 := 0.0
	if len(recoveries) > 0 {
		recoveryP99 = quantile(millisOf(recoveries), 0.99)
	}
	report("storm.token_rtt_ms", rtt)
	report("storm.token_requests", tokenRequests()-before)
	report("storm.failed", float64(failed))
	report("storm.recovered", float64(len(recoveries)))
	report("storm.valid_p99_ms", quantile(millisOf(valid), 0.99))
	report("storm.p99_ms", quantile(millisOf(stormed), 0.99))
	report("storm.recovery_p99_ms", recoveryP99)
	report("storm.added_over_rtt_ms", recoveryP99-rtt)
}

func main() {
	flag.Parse()
	if *server == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: go-peer -server URL (hot|economy|storm)")
		os.Exit(2)
	}
	switch flag.Arg(0) {
	case "hot":
		hot()
	case "economy":
		economy()
	case "storm":
		storm()
	default:
		fmt.Fprintln(os.Stderr, "unknown command", flag.Arg(0))
		os.Exit(2)
	}
}
