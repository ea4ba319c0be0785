package main

// suggest returns the candidate closest to a mistyped name, or "" when
// none is close: a unique candidate that starts with name, or else the
// one at the least edit distance (a swap of two neighbours counts once)
// if that is at most a third of the name's length, and at least 1.
func suggest(name string, candidates []string) string {
	if name == "" {
		return ""
	}
	prefixed := ""
	n := 0
	for _, c := range candidates {
		if len(c) > len(name) && c[:len(name)] == name {
			prefixed, n = c, n+1
		}
	}
	if n == 1 {
		return prefixed
	}
	best, bestDist := "", max(1, len(name)/3)+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes, each
// costing one.
func editDistance(a, b string) int {
	// d[i][j] is the distance between a[:i] and b[:j]; three rows suffice.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
