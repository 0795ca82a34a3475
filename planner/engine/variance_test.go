package engine

import (
	"strconv"
	"strings"
	"testing"
)

// varianceSets is ground truth produced by PostgreSQL 15.18: for each set of
// values, given as the listed type,
//
//	SELECT variance(x), var_pop(x), stddev(x), stddev_pop(x)
//	FROM (VALUES ('v1'::type), ('v2'::type), ...) t(x)
//
// with the results as psql printed them (numeric_out). "NULL" is SQL NULL,
// among the values and the results. The values are as numeric_out prints
// them (1e-10 went in as a literal and comes out as 0.0000000001).
var varianceSets = []struct {
	typ                                    string // the SQL type the values had
	values                                 []string
	varSamp, varPop, stddevSamp, stddevPop string
}{
	// Integers sum to numerics of scale 0, so rscale is 0 for the products.
	{"int4", []string{"1", "2", "3", "4"},
		"1.6666666666666667", "1.2500000000000000", "1.2909944487358056", "1.1180339887498948"},
	{"int4", []string{"1", "2"},
		"0.50000000000000000000", "0.25000000000000000000", "0.70710678118654752440", "0.50000000000000000000"},
	// One row: no sample statistics; a population's is 0 (n*x*x - x*x is 0).
	{"int4", []string{"5"},
		"NULL", "0", "NULL", "0"},
	{"int4", []string{},
		"NULL", "NULL", "NULL", "NULL"},
	// A numerator of 0 gives 0 of scale 0.
	{"int4", []string{"7", "7", "7"},
		"0", "0", "0", "0"},
	{"int4", []string{"1", "2", "2"},
		"0.33333333333333333333", "0.22222222222222222222", "0.57735026918962576451", "0.47140452079103168293"},
	{"int4", []string{"0", "0", "1"},
		"0.33333333333333333333", "0.22222222222222222222", "0.57735026918962576451", "0.47140452079103168293"},
	{"int4", []string{"-3", "0", "3"},
		"9.0000000000000000", "6.0000000000000000", "3.0000000000000000", "2.4494897427831781"},
	{"int4", []string{"1", "2", "3", "4", "5", "6", "7"},
		"4.6666666666666667", "4.0000000000000000", "2.1602468994692868", "2.0000000000000000"},
	// Large quotients leave select_div_scale few or no fraction digits.
	{"int4", []string{"2147483647", "-2147483648"},
		"9223372032559808513", "4611686016279904256", "3037000499", "2147483647"},
	{"int4", []string{"100", "101", "102", "1000000"},
		"249949502550.91666667", "187462126913.18750000", "499949.50000067", "432968.96760991"},
	{"int2", []string{"1", "32767", "-32768"},
		"1073709057.00000000", "715806038.00000000", "32767.50001144", "26754.55172489"},
	{"int8", []string{"9223372036854775807", "9223372036854775806"},
		"0.50000000000000000000", "0.25000000000000000000", "0.70710678118654752440", "0.50000000000000000000"},
	{"int8", []string{"9223372036854775807", "-9223372036854775808", "0"},
		"85070591730234615856620279821087277056", "56713727820156410571080186547391518038", "9223372036854775807", "7530851732716320752"},
	{"int8", []string{"1", "NULL", "4"},
		"4.5000000000000000", "2.2500000000000000", "2.1213203435596426", "1.5000000000000000"},
	{"int8", []string{"1", "10", "100", "1000", "10000", "100000"},
		"1608680209.50000000", "1340566841.25000000", "40108.35585635", "36613.75207828"},
	// Numerics: the sums have the largest scale among the values, so
	// the products have twice that.
	{"numeric", []string{"1.5", "2.25", "-0.001"},
		"1.3137503333333333", "0.87583355555555555556", "1.1461894840441232", "0.93585979481734097816"},
	{"numeric", []string{"1.5", "2.5"},
		"0.50000000000000000000", "0.25000000000000000000", "0.70710678118654752440", "0.50000000000000000000"},
	{"numeric", []string{"1.5"},
		"NULL", "0", "NULL", "0"},
	{"numeric", []string{"0.1", "0.2", "0.3"},
		"0.01000000000000000000", "0.00666666666666666667", "0.10000000000000000000", "0.08164965809277260329"},
	{"numeric", []string{"1.0", "2.00", "3.000"},
		"1.00000000000000000000", "0.66666666666666666667", "1.00000000000000000000", "0.81649658092772603273"},
	{"numeric", []string{"2.25", "2.25", "2.25"},
		"0", "0", "0", "0"},
	{"numeric", []string{"-0.001", "0.001"},
		"0.000002000000000000000000", "0.000001000000000000000000", "0.001414213562373095048802", "0.001000000000000000000000"},
	// Huge values, and tiny differences.
	{"numeric", []string{"1000000000000000000000000000000", "1000000000000000000000000000001"},
		"0.50000000000000000000", "0.25000000000000000000", "0.70710678118654752440", "0.50000000000000000000"},
	{"numeric", []string{"1000000000000000000000000000000", "-1000000000000000000000000000000", "3"},
		"1000000000000000000000000000000000000000000000000000000000003", "666666666666666666666666666666666666666666666666666666666669", "1000000000000000000000000000000", "816496580927726032732428024902"},
	{"numeric", []string{"1000000000000000000000000000000", "2000000000000000000000000000000", "4000000000000000000000000000000"},
		"2333333333333333333333333333333333333333333333333333333333333", "1555555555555555555555555555555555555555555555555555555555556", "1527525231651946668862682397909", "1247219128924647128527916244106"},
	{"numeric", []string{"1.000000000000000001", "1.000000000000000002"},
		"0.00000000000000000000000000000000000050000000000000000000", "0.00000000000000000000000000000000000025000000000000000000", "0.00000000000000000070710678118654752440084436210484903928", "0.00000000000000000050000000000000000000000000000000000000"},
	{"numeric", []string{"1.000000000000000001", "1.000000000000000002", "1.000000000000000004"},
		"0.0000000000000000000000000000000000023333333333333333", "0.0000000000000000000000000000000000015555555555555556", "0.0000000000000000015275252316519466579517878861097171", "0.0000000000000000012472191289246471463453323716004753"},
	{"numeric", []string{"0.0000000000000000000001", "0.0000000000000000000002"},
		"0.0000000000000000000000000000000000000000000050000000000000000000", "0.0000000000000000000000000000000000000000000025000000000000000000", "0.0000000000000000000000707106781186547524400844362104849039284836", "0.0000000000000000000000500000000000000000000000000000000000000000"},
	{"numeric", []string{"123456789.123456789", "-987654321.987654321", "0.5"},
		"370878423436722044.700109231884265610", "247252282291148029.800072821256177074", "608997884.591335871004792456", "497244690.561043627721095291"},
	{"numeric", []string{"0.3333", "0.6667", "1"},
		"0.11112222333333333333", "0.07408148222222222222", "0.33335000124993750078", "0.27217913627282716877"},
	{"numeric", []string{"10", "20", "30", "40.5"},
		"171.7291666666666667", "128.7968750000000000", "13.1045475567326118", "11.3488710892317391"},
	{"numeric", []string{"3.14159", "2.71828", "1.41421", "1.73205"},
		"0.66034220629166666667", "0.49525665471875000000", "0.81261442658352224621", "0.70374473690305492756"},
	{"numeric", []string{"99999999.99", "0.01"},
		"4999999998000000.0002", "2499999999000000.0001", "70710678.1045", "49999999.9900"},
	{"numeric", []string{"1", "1", "1", "1", "1", "1", "1", "1", "1", "2"},
		"0.10000000000000000000", "0.09000000000000000000", "0.31622776601683793320", "0.30000000000000000000"},
	{"numeric", []string{"0", "0"},
		"0", "0", "0", "0"},
	{"numeric", []string{"0.00", "0.00", "0.00"},
		"0", "0", "0", "0"},
	{"numeric", []string{"-5.5", "-6.5", "-7.25"},
		"0.77083333333333333333", "0.51388888888888888889", "0.87797114607106157070", "0.71686043892021889764"},
	{"numeric", []string{"12345678901234567890.5", "12345678901234567891.5"},
		"0.50000000000000000000", "0.25000000000000000000", "0.70710678118654752440", "0.50000000000000000000"},
	// NaN or an infinity anywhere gives NaN, but only once there are enough
	// rows: they count as rows.
	{"numeric", []string{"NaN", "1"},
		"NaN", "NaN", "NaN", "NaN"},
	{"numeric", []string{"NaN"},
		"NULL", "NaN", "NULL", "NaN"},
	{"numeric", []string{"Infinity", "1", "2"},
		"NaN", "NaN", "NaN", "NaN"},
	{"numeric", []string{"-Infinity", "5"},
		"NaN", "NaN", "NaN", "NaN"},
	{"numeric", []string{"Infinity", "-Infinity"},
		"NaN", "NaN", "NaN", "NaN"},
	{"numeric", []string{"Infinity"},
		"NULL", "NaN", "NULL", "NaN"},
	{"numeric", []string{"1.5", "NULL", "NULL"},
		"NULL", "0", "NULL", "0"},
	{"numeric", []string{"0.1", "0.1", "0.1", "0.1", "0.2"},
		"0.00200000000000000000", "0.00160000000000000000", "0.04472135954999579393", "0.04000000000000000000"},
	{"numeric", []string{"0.0000000001", "0.0000000002"},
		"0.0000000000000000000050000000000000000000", "0.0000000000000000000025000000000000000000", "0.0000000000707106781186547524400844362105", "0.0000000000500000000000000000000000000000"},
	// stddev is the root of the variance already rounded: rounding the root
	// of the exact variance would end these in ...932, ...997, ...498, ...468,
	// ...947 and ...799.
	{"numeric", []string{"6.5", "8.8", "7.7"},
		"1.3233333333333333", "0.88222222222222222222", "1.1503622617824931", "0.93926685357369138996"},
	{"numeric", []string{"17.1", "7.8", "19.4"},
		"37.7233333333333333", "25.1488888888888889", "6.1419323777890402", "5.0148667867540499"},
	{"numeric", []string{"16.1", "16.9", "17.4"},
		"0.43000000000000000000", "0.28666666666666666667", "0.65574385243020006523", "0.53541261347363368469"},
	{"numeric", []string{"18.3", "14.5", "14.1"},
		"5.3733333333333333", "3.5822222222222222", "2.3180451534284946", "1.8926759422104520"},
	{"numeric", []string{"9.5", "11.7", "18.2"},
		"20.4633333333333333", "13.6422222222222222", "4.5236416008933923", "3.6935379004718798"},
}

// varianceSums adds up n, sum(x) and sum(x*x) over values as shards would,
// one value per shard, with the package's own arithmetic.
func varianceSums(t *testing.T, values []string) (n int64, sumX, sumX2 decimal) {
	t.Helper()
	sumX, sumX2 = decimalFromInt(0), decimalFromInt(0)
	for _, v := range values {
		if v == "NULL" {
			continue
		}
		x := decRead(t, v, 0)
		n++
		sumX = sumX.add(x)
		sumX2 = sumX2.add(x.mul(x))
	}
	return n, sumX, sumX2
}

// varianceCheck compares combineVariance's answer with Postgres's text.
func varianceCheck(t *testing.T, name string, kind varianceKind, n int64, sumX, sumX2 decimal, want string) {
	t.Helper()
	got, ok, err := combineVariance(kind, n, sumX, sumX2)
	switch {
	case err != nil:
		t.Errorf("%s: %v", name, err)
	case !ok && want != "NULL":
		t.Errorf("%s = NULL, want %s", name, want)
	case ok && string(got.encode(0)) != want:
		t.Errorf("%s = %s, want %s", name, got.encode(0), want)
	case ok:
		// The binary form says the same.
		if back := string(decRead(t, string(got.encode(1)), 1).encode(0)); back != want {
			t.Errorf("%s in binary reads back as %s", name, back)
		}
	}
}

var varianceAggregates = []struct {
	kind varianceKind
	name string
}{{varSamp, "variance"}, {varPop, "var_pop"}, {stddevSamp, "stddev"}, {stddevPop, "stddev_pop"}}

func TestVarianceMatchesPostgres(t *testing.T) {
	for _, tc := range varianceSets {
		n, sumX, sumX2 := varianceSums(t, tc.values)
		for i, want := range []string{tc.varSamp, tc.varPop, tc.stddevSamp, tc.stddevPop} {
			k := varianceAggregates[i]
			varianceCheck(t, k.name+"("+tc.typ+" "+strings.Join(tc.values, ",")+")", k.kind, n, sumX, sumX2, want)
		}
	}
}

// Values of scale 600 make the products' scale 1200, and select_div_scale
// caps the quotient's at 1000 (NUMERIC_MAX_DISPLAY_SCALE). Results from
// PostgreSQL 15.18, SELECT variance(x), ... FROM unnest('{...}'::numeric[]) x;
// the irrational roots among them are left out here.
func TestVarianceScaleCap(t *testing.T) {
	z, zeros := strings.Repeat("0", 600), strings.Repeat("0", 1000)
	for _, tc := range []struct {
		values []string
		kind   int // index into varianceAggregates
		want   string
	}{
		{[]string{"0." + z, "1." + z, "2." + z}, 0, "1." + zeros},
		{[]string{"0." + z, "1." + z, "2." + z}, 1, "0." + strings.Repeat("6", 999) + "7"},
		{[]string{"0." + z, "1." + z, "2." + z}, 2, "1." + zeros},
		{[]string{"-1." + z, "1." + z}, 0, "2." + zeros},
		{[]string{"-1." + z, "1." + z}, 1, "1." + zeros},
		{[]string{"-1." + z, "1." + z}, 3, "1." + zeros},
		{[]string{"1." + z, "2", "2"}, 0, "0." + strings.Repeat("3", 1000)},
		{[]string{"1." + z, "2", "2"}, 1, "0." + strings.Repeat("2", 1000)},
	} {
		n, sumX, sumX2 := varianceSums(t, tc.values)
		k := varianceAggregates[tc.kind]
		varianceCheck(t, k.name+" at scale 600", k.kind, n, sumX, sumX2, tc.want)
	}
}

// varianceShards is ground truth from PostgreSQL 15.18 in the form the
// gateway meets it: each shard's partial sums, from
//
//	SELECT count(x), sum((x)::numeric), sum((x)::numeric * (x)::numeric)
//	FROM (SELECT <x> AS x, g % <shards> AS shard FROM <rows>) s
//	GROUP BY shard ORDER BY shard
//
// and the four aggregates over all the rows on one node,
//
//	SELECT variance(x), var_pop(x), stddev(x), stddev_pop(x)
//	FROM (SELECT <x> AS x FROM <rows>) s
var varianceShards = []struct {
	rows                                   string
	shards                                 [][3]string // count, sum, sum of squares
	varSamp, varPop, stddevSamp, stddevPop string
}{
	{"x = g::int4 over generate_series(1, 100000) g, 3 shards", [][3]string{
		{"33333", "1666683333", "111112777761111"},
		{"33334", "1666716667", "111116111161111"},
		{"33333", "1666650000", "111109444427778"},
	},
		"833341666.66666667", "833333333.25000000", "28867.65779669", "28867.51345804"},
	{"x = (g * 1000003)::int8 over generate_series(1, 1000) g, 4 shards", [][3]string{
		{"250", "125500376500", "83834503004754506000"},
		{"250", "124750374250", "83083748500247749250"},
		{"250", "125000375000", "83333499998749997000"},
		{"250", "125250375750", "83583751500252249250"},
	},
		"83417167167417417", "83333750000249999", "288820303", "288675856"},
	{"x = round(g / 7.0, 5) over generate_series(1, 500) g, 2 shards", [][3]string{
		{"250", "8964.28571", "427724.4895926551"},
		{"250", "8928.57143", "425168.3671416347"},
	},
		"426.0204077542922661", "425.1683669387836816", "20.6402618140926756", "20.6196112218146267"},
	{"x = (g % 17 - 8) * 0.125 over generate_series(1, 300) g, 3 shards", [][3]string{
		{"100", "0.250", "36.687500"},
		{"100", "-1.375", "37.234375"},
		{"100", "-1.625", "36.859375"},
	},
		"0.37042154403567447046", "0.36918680555555555556", "0.60862266145426631695", "0.60760744363079979927"},
	{"x = 10::numeric ^ 25 + g over generate_series(1, 50) g, 5 shards", [][3]string{
		{"10", "100000000000000000000000275.0000000000000000", "1000000000000000000000005500000000000000000000009625.00000000000000000000000000000000"},
		{"10", "100000000000000000000000235.0000000000000000", "1000000000000000000000004700000000000000000000007585.00000000000000000000000000000000"},
		{"10", "100000000000000000000000245.0000000000000000", "1000000000000000000000004900000000000000000000008065.00000000000000000000000000000000"},
		{"10", "100000000000000000000000255.0000000000000000", "1000000000000000000000005100000000000000000000008565.00000000000000000000000000000000"},
		{"10", "100000000000000000000000265.0000000000000000", "1000000000000000000000005300000000000000000000009085.00000000000000000000000000000000"},
	},
		"212.50000000000000000000000000000000", "208.25000000000000000000000000000000", "14.57737973711325117718538219386396", "14.43086968966181192437493449590927"},
	{"x = g::numeric / 3 over generate_series(1, 200) g, 2 shards", [][3]string{
		{"100", "3366.66666666666666666667", "150377.7777777777777807111155555555556288888889"},
		{"100", "3333.33333333333333333333", "148144.4444444444444429777755555555556288888889"},
	},
		"372.2222222222222222295924176437744284310441", "370.3611111111111111184444555555555562888889", "19.2930615046503757894506898933760539034418", "19.2447684088718280194978891808333665776381"},
	{"x = CASE WHEN g = 5 THEN 'NaN'::numeric ELSE g END over generate_series(1, 9) g, 3 shards", [][3]string{
		{"3", "18", "126"},
		{"3", "12", "66"},
		{"3", "NaN", "NaN"},
	},
		"NaN", "NaN", "NaN", "NaN"},
}

func TestVarianceFromShardSums(t *testing.T) {
	for _, tc := range varianceShards {
		var n int64
		sumX, sumX2 := decimalFromInt(0), decimalFromInt(0)
		for _, s := range tc.shards {
			count, err := strconv.ParseInt(s[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			n += count
			sumX = sumX.add(decRead(t, s[1], 0))
			sumX2 = sumX2.add(decRead(t, s[2], 0))
		}
		for i, want := range []string{tc.varSamp, tc.varPop, tc.stddevSamp, tc.stddevPop} {
			k := varianceAggregates[i]
			varianceCheck(t, k.name+" with "+tc.rows, k.kind, n, sumX, sumX2, want)
		}
	}
}

func TestVarianceNegativeCount(t *testing.T) {
	_, _, err := combineVariance(varPop, -1, decimalFromInt(0), decimalFromInt(0))
	decWantCode(t, err, CodeInternal)
}

// Products as PostgreSQL 15 prints them (SELECT 1.5 * 2.25 is 3.375, and so on).
func TestVarianceMul(t *testing.T) {
	for _, tc := range []struct{ x, y, want string }{
		{"1.5", "2.25", "3.375"},
		{"-0.001", "-0.001", "0.000001"},
		{"12.50", "0.10", "1.2500"},
		{"0.00", "5", "0.00"},
		{"-3", "0.0", "0.0"},
		{"99999999.99", "99999999.99", "9999999998000000.0001"},
		{"123456789012345678901234567890", "-2", "-246913578024691357802469135780"},
		{"Infinity", "0", "NaN"},
		{"Infinity", "-2", "-Infinity"},
		{"-Infinity", "-Infinity", "Infinity"},
		{"-Infinity", "0.5", "-Infinity"},
		{"NaN", "Infinity", "NaN"},
		{"0.5", "NaN", "NaN"},
	} {
		got := string(decRead(t, tc.x, 0).mul(decRead(t, tc.y, 0)).encode(0))
		if got != tc.want {
			t.Errorf("%s * %s = %s, want %s", tc.x, tc.y, got, tc.want)
		}
	}
}
