// The shardgate driver scenario for the PostgreSQL JDBC driver (pgJDBC),
// compiled and run by internal/drivertest. The connection comes from PGHOST,
// PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGSSLMODE (pgJDBC does not read
// them itself).
//
// Protocol features it exercises: pgJDBC uses the extended protocol for every
// statement, parameters or not (Parse/Bind/Describe/Execute/Sync). A
// PreparedStatement runs through unnamed statements for its first four
// executions and switches to a named server-side statement ("S_1") from the
// fifth (prepareThreshold=5); executeBatch pipelines 20 Bind/Execute pairs
// before one Sync. setAutoCommit(false) makes pgJDBC send BEGIN itself, in
// the same pipeline as the transaction's first statement; it soon runs its
// own BEGIN, COMMIT and ROLLBACK as named statements (S_n), prepared once
// per connection and reused by later transactions.
// setSavepoint and rollback(Savepoint) send SAVEPOINT "s1" / ROLLBACK TO
// SAVEPOINT "s1". At connect pgJDBC sends DateStyle, TimeZone,
// client_encoding and extra_float_digits in the startup packet, then
// SET extra_float_digits = 3 and SET application_name. Statement.cancel
// sends a CancelRequest on a new connection from another thread. CopyManager
// runs COPY FROM STDIN (CSV) and COPY TO STDOUT, as simple Query messages.

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class Scenario {
    static final String APP_NAME = "shardgate-drivertest";
    static final long QUOTED_EVENT_ID = 7;
    static final String QUOTED_EVENT_PAYLOAD = "event 7, \"quoted\"";
    static final int EVENT_COUNT = 1000;

    static final String INSERT_ACCOUNT = "insert into accounts (id, owner, balance) values (?, ?, ?)";
    static final String INSERT_LEDGER = "insert into ledger (account_id, id, amount, note) values (?, ?, ?, ?)";

    static class StepError extends RuntimeException {
        StepError(String msg) {
            super(msg);
        }
    }

    interface Step {
        void run(Connection c) throws Exception;
    }

    static void check(boolean cond, String msg) {
        if (!cond) {
            throw new StepError(msg);
        }
    }

    static void checkIDs(List<Long> ids, int n) {
        List<Long> sorted = new ArrayList<>(ids);
        Collections.sort(sorted);
        check(sorted.size() == n, "got " + sorted.size() + " ids, want " + n);
        for (int i = 0; i < n; i++) {
            check(sorted.get(i) == i + 1, "sorted ids[" + i + "] = " + sorted.get(i) + ", want " + (i + 1));
        }
    }

    static String eventPayload(long id) {
        return id == QUOTED_EVENT_ID ? QUOTED_EVENT_PAYLOAD : "event " + id;
    }

    static String csvField(String s) {
        if (s.contains(",") || s.contains("\"") || s.contains("\n") || s.contains("\r")) {
            return "\"" + s.replace("\"", "\"\"") + "\"";
        }
        return s;
    }

    static void execute(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    static String queryString(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            check(rs.next(), sql + ": no row");
            return rs.getString(1);
        }
    }

    static List<Long> queryIDs(Connection c, String sql, Long key) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            if (key != null) {
                ps.setLong(1, key);
            }
            List<Long> ids = new ArrayList<>();
            try (ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    ids.add(rs.getLong(1));
                }
            }
            return ids;
        }
    }

    static BigDecimal balance(Connection c, long id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("select balance from accounts where id = ?")) {
            ps.setLong(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "account " + id + " not found");
                return rs.getBigDecimal(1);
            }
        }
    }

    static void schema(Connection c) throws SQLException {
        for (String q : new String[] {
            "drop table if exists ledger",
            "drop table if exists accounts",
            "drop table if exists events",
            "create table accounts (id bigint primary key, owner text not null, balance numeric(12,2) not null)",
            "create table ledger (account_id bigint not null, id bigint not null, amount numeric(12,2) not null, note text, primary key (account_id, id))",
            "create table events (id bigint primary key, payload text)",
        }) {
            execute(c, q);
        }
    }

    static void insertPrepared(Connection c) throws SQLException {
        BigDecimal thousand = new BigDecimal("1000.00");
        try (PreparedStatement ps = c.prepareStatement(INSERT_ACCOUNT)) {
            for (long id = 1; id <= 100; id++) {
                ps.setLong(1, id);
                ps.setString(2, "owner " + id);
                ps.setBigDecimal(3, thousand);
                int n = ps.executeUpdate();
                check(n == 1, "insert of account " + id + ": " + n + " rows");
            }
            for (long id = 101; id <= 120; id++) {
                ps.setLong(1, id);
                ps.setString(2, "owner " + id);
                ps.setBigDecimal(3, thousand);
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            check(counts.length == 20, "executeBatch: " + counts.length + " counts, want 20");
            for (int n : counts) {
                check(n == 1 || n == Statement.SUCCESS_NO_INFO, "executeBatch count " + n);
            }
        }
    }

    static void selectByKey(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("select owner, balance from accounts where id = ?")) {
            ps.setLong(1, 42);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "account 42 not found");
                String owner = rs.getString(1);
                BigDecimal balance = rs.getBigDecimal(2);
                check(owner.equals("owner 42") && balance.toPlainString().equals("1000.00"),
                    "account 42 is (" + owner + ", " + balance + "), want (owner 42, 1000.00)");
            }
        }
    }

    static void selectScatter(Connection c) throws SQLException {
        checkIDs(queryIDs(c, "select id from accounts", null), 120);
    }

    static void rollback(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try {
            try (PreparedStatement ps = c.prepareStatement("update accounts set balance = 0 where id = ?")) {
                ps.setLong(1, 1);
                ps.executeUpdate();
            }
            BigDecimal b = balance(c, 1);
            check(b.toPlainString().equals("0.00"), "in the transaction account 1 has " + b + ", want 0.00");
        } finally {
            c.rollback();
            c.setAutoCommit(true);
        }
        BigDecimal b = balance(c, 1);
        check(b.toPlainString().equals("1000.00"), "after ROLLBACK account 1 has " + b + ", want 1000.00");
    }

    static void multiShardCommit(Connection c) throws SQLException {
        BigDecimal ten = new BigDecimal("10.00");
        c.setAutoCommit(false);
        try (PreparedStatement debit = c.prepareStatement("update accounts set balance = balance - ? where id = ?");
             PreparedStatement credit = c.prepareStatement("update accounts set balance = balance + ? where id = ?");
             PreparedStatement ledger = c.prepareStatement(INSERT_LEDGER)) {
            for (long to = 2; to <= 11; to++) {
                debit.setBigDecimal(1, ten);
                debit.setLong(2, 1);
                debit.executeUpdate();
                credit.setBigDecimal(1, ten);
                credit.setLong(2, to);
                credit.executeUpdate();
                ledger.setLong(1, to);
                ledger.setLong(2, 1);
                ledger.setBigDecimal(3, ten);
                ledger.setString(4, "transfer from 1");
                ledger.executeUpdate();
            }
            c.commit();
        } catch (Exception e) {
            c.rollback();
            throw e;
        } finally {
            c.setAutoCommit(true);
        }
        Map<Long, BigDecimal> balances = new HashMap<>();
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("select id, balance from accounts where id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)")) {
            while (rs.next()) {
                balances.put(rs.getLong(1), rs.getBigDecimal(2));
            }
        }
        check(balances.size() == 11, "got " + balances.size() + " accounts, want 11");
        BigDecimal sum = BigDecimal.ZERO;
        for (BigDecimal b : balances.values()) {
            sum = sum.add(b);
        }
        check(sum.compareTo(new BigDecimal("11000.00")) == 0, "balances of accounts 1..11 sum to " + sum + ", want 11000.00");
        check(balances.get(1L).toPlainString().equals("900.00"), "account 1 has " + balances.get(1L) + ", want 900.00");
        try (PreparedStatement ps = c.prepareStatement("select id, amount from ledger where account_id = ?")) {
            for (long to = 2; to <= 11; to++) {
                ps.setLong(1, to);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "ledger of account " + to + ": no row");
                    long id = rs.getLong(1);
                    BigDecimal amount = rs.getBigDecimal(2);
                    check(id == 1 && amount.toPlainString().equals("10.00"),
                        "ledger of account " + to + ": (" + id + ", " + amount + "), want (1, 10.00)");
                    check(!rs.next(), "ledger of account " + to + ": more than one row");
                }
            }
        }
    }

    static void savepoint(Connection c) throws SQLException {
        BigDecimal five = new BigDecimal("5.00");
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement(INSERT_LEDGER)) {
            ps.setLong(1, 50);
            ps.setLong(2, 1);
            ps.setBigDecimal(3, five);
            ps.setString(4, "savepoint");
            ps.executeUpdate();
            Savepoint s1 = c.setSavepoint("s1");
            String state = null;
            try {
                ps.executeUpdate();
            } catch (SQLException e) {
                state = e.getSQLState();
            }
            check("23505".equals(state), "duplicate insert: SQLSTATE " + state + ", want 23505");
            c.rollback(s1);
            ps.setLong(2, 2);
            ps.executeUpdate();
            c.commit();
        } catch (Exception e) {
            c.rollback();
            throw e;
        } finally {
            c.setAutoCommit(true);
        }
        checkIDs(queryIDs(c, "select id from ledger where account_id = ?", 50L), 2);
    }

    static void setShow(Connection c) throws SQLException {
        execute(c, "set application_name = '" + APP_NAME + "'");
        String app = queryString(c, "show application_name");
        check(APP_NAME.equals(app), "application_name is " + app + ", want " + APP_NAME);
        execute(c, "set statement_timeout = '7s'");
        String st = queryString(c, "show statement_timeout");
        check("7s".equals(st), "statement_timeout is " + st + ", want 7s");
        execute(c, "reset statement_timeout");
    }

    static void cancel(Connection c) throws Exception {
        try (Statement st = c.createStatement()) {
            Thread canceller = new Thread(() -> {
                try {
                    Thread.sleep(300);
                    st.cancel();
                } catch (Exception e) {
                    e.printStackTrace();
                }
            });
            long start = System.nanoTime();
            canceller.start();
            String state = null;
            try {
                st.execute("select pg_sleep(20)");
            } catch (SQLException e) {
                state = e.getSQLState();
            }
            canceller.join();
            long tookMs = (System.nanoTime() - start) / 1_000_000;
            check("57014".equals(state), "pg_sleep(20): SQLSTATE " + state + " after " + tookMs + " ms, want 57014");
            check(tookMs < 10_000, "cancel took " + tookMs + " ms");
        }
        String one = queryString(c, "select 1");
        check("1".equals(one), "select 1 after cancel: " + one);
    }

    static void copy(Connection c) throws Exception {
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        StringBuilder csv = new StringBuilder();
        for (long id = 1; id <= EVENT_COUNT; id++) {
            csv.append(id).append(',').append(csvField(eventPayload(id))).append('\n');
        }
        long n = cm.copyIn("copy events (id, payload) from stdin (format csv)", new StringReader(csv.toString()));
        check(n == EVENT_COUNT, "COPY FROM: " + n + " rows, want " + EVENT_COUNT);

        StringWriter all = new StringWriter();
        cm.copyOut("copy events to stdout", all);
        String out = all.toString();
        long lines = out.chars().filter(ch -> ch == '\n').count();
        check(lines == EVENT_COUNT, "COPY events TO STDOUT: " + lines + " lines, want " + EVENT_COUNT);
        String quoted = QUOTED_EVENT_ID + "\t" + QUOTED_EVENT_PAYLOAD + "\n";
        check(out.contains(quoted), "COPY events TO STDOUT lacks the line " + quoted);

        StringWriter five = new StringWriter();
        cm.copyOut("copy (select id, payload from events where id = 5) to stdout", five);
        check(five.toString().equals("5\tevent 5\n"), "COPY (select ... where id = 5) TO STDOUT: " + five);

        try (PreparedStatement ps = c.prepareStatement("select payload from events where id = ?")) {
            ps.setLong(1, QUOTED_EVENT_ID);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "event " + QUOTED_EVENT_ID + " not found");
                String payload = rs.getString(1);
                check(QUOTED_EVENT_PAYLOAD.equals(payload), "event " + QUOTED_EVENT_ID + " payload " + payload);
            }
        }

        // A result merged from every shard, read a few rows at a time: in a
        // transaction pgJDBC fetches with Execute row limits (the fetch size).
        boolean auto = c.getAutoCommit();
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.setFetchSize(64);
            try (ResultSet rs = st.executeQuery("select id from events order by id desc")) {
                long want = EVENT_COUNT;
                while (rs.next()) {
                    check(rs.getLong(1) == want, "fetch size 64: got id " + rs.getLong(1) + ", want " + want);
                    want--;
                }
                check(want == 0, "fetch size 64: " + (EVENT_COUNT - want) + " rows, want " + EVENT_COUNT);
            }
        }
        c.commit();
        c.setAutoCommit(auto);
    }

    static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    public static void main(String[] args) {
        String host = env("PGHOST", "localhost");
        if (host.contains(":")) {
            host = "[" + host + "]";
        }
        String url = "jdbc:postgresql://" + host + ":" + env("PGPORT", "5432") + "/" + env("PGDATABASE", "postgres");
        Properties props = new Properties();
        props.setProperty("user", env("PGUSER", System.getProperty("user.name")));
        if (System.getenv("PGPASSWORD") != null) {
            props.setProperty("password", System.getenv("PGPASSWORD"));
        }
        if (System.getenv("PGSSLMODE") != null) {
            props.setProperty("sslmode", System.getenv("PGSSLMODE"));
        }

        Map<String, Step> steps = new java.util.LinkedHashMap<>();
        steps.put("schema", Scenario::schema);
        steps.put("insert-prepared", Scenario::insertPrepared);
        steps.put("select-by-key", Scenario::selectByKey);
        steps.put("select-scatter", Scenario::selectScatter);
        steps.put("rollback", Scenario::rollback);
        steps.put("multi-shard-commit", Scenario::multiShardCommit);
        steps.put("savepoint", Scenario::savepoint);
        steps.put("set-show", Scenario::setShow);
        steps.put("cancel", Scenario::cancel);
        steps.put("copy", Scenario::copy);

        String step = "connect";
        try (Connection c = DriverManager.getConnection(url, props)) {
            for (Map.Entry<String, Step> e : steps.entrySet()) {
                step = e.getKey();
                e.getValue().run(c);
                System.out.println("ok " + step);
                System.out.flush();
            }
            System.out.println("ok all");
            System.out.flush();
        } catch (StepError e) {
            System.err.println("FAIL " + step + ": " + e.getMessage());
            System.exit(1);
        } catch (SQLException e) {
            System.err.println("FAIL " + step + ": SQLSTATE " + e.getSQLState() + ": " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.err.print("FAIL " + step + ": ");
            e.printStackTrace();
            System.exit(1);
        }
    }
}
