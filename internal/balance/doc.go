// Package balance chooses the pod for a session's first request, and for
// requests that carry no session key. After the first request the route's
// stick table keeps the session on that pod, so a balancer only decides
// where new sessions land; it never moves a live one.
//
// A Balancer is built by name with New and is safe for concurrent use. Its
// Pick takes the candidates that may take new sessions (serving, not
// draining) and returns an index into them, or -1 when there are none, which
// the proxy turns into 503. None of the balancers allocates, and each costs
// O(n) in the number of candidates. With four pods a pick takes about
// 10-20 ns (round-robin), 25 ns (weighted round-robin), 35 ns (random-two),
// 40-55 ns (least-conn, least-sessions) and 200-250 ns (hash).
//
// round-robin (the default, also the empty name): pods in turn. With equal
// weights it is one atomic add, lock-free; with unequal weights it is nginx's
// smooth weighted round robin under a mutex, which interleaves picks
// (weights 1:3 give B A B B). Use it when sessions cost
// about the same and last about as long, or for keyless requests under the
// "balance" policy, where it runs on every request.
//
// least-conn: the pod with the fewest requests in flight per unit of weight.
// Use it when request cost varies a lot, such as long polls or slow queries,
// and one replica sees most of the traffic. Ties rotate among the tied pods.
//
// least-sessions: the pod with the fewest live pinned sessions per unit of
// weight. Use it when a session holds memory or a connection on its pod, so
// session count is the load, and sessions outlive the requests in them.
//
// random-two: two distinct random pods, the one with fewer requests in flight
// per unit of weight wins (Mitzenmacher, "The Power of Two Choices in
// Randomized Load Balancing", 2001). Use it instead of least-conn when several
// podpin replicas balance the same pods: each sees only its own in-flight
// counts, and the randomness keeps them from all choosing the same idle pod.
//
// hash: weighted rendezvous hashing of the session key over pod names
// (Thaler and Ravishankar 1998; Schindelhauer and Schomaker 2005). Every
// replica, in every process, places a key on the same pod with no shared
// state, and a change to the pod set moves only the keys it must. Use it when
// replicas cannot share a stick table, for instance while the shared store is
// down; keyless requests all hash alike, so pair it with the "assign" or
// "reject" policy. A pick hashes each pod's name and takes one logarithm per
// pod: about 50 ns a pod for 25-character names, mostly in hashing the name.
// It runs once per new session, not per request.
//
// Weights come from Pod.Weight; a value below 1 counts as 1. A balancer reads
// Name, Weight, InFlight and Sessions on every pick, so those should be plain
// loads.
package balance
