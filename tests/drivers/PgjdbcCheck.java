// pgjdbc through pgbelay, run by tests/drivers.rs (compiled with javac against
// /usr/share/java/postgresql.jar, Debian's libpostgresql-jdbc-java).
//
// Connects with PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD from the environment to a
// database laid out by tests/drivers/schema.sql, runs the steps named on the command line
// (all of them without arguments) and prints one JSON object per step on stdout:
// {"step": NAME, "ok": true, ...what it returned} or {"step": NAME, "ok": false,
// "sqlstate": ..., "message": ...}. The test asserts on these lines and on the database.
// pgjdbc runs everything through the extended protocol; after prepareThreshold (5)
// executions of one PreparedStatement it switches to a named server-side statement.
// Exit code 3: the pgjdbc driver is not on the class path (run scripts/setup).
//
// statement_batch is not among the default steps: it reproduces an open problem (a write
// behind another statement that already ran in its extended-protocol batch is refused);
// run it by name. PGJDBC_PROPERTIES adds connection properties, e.g.
// "preferQueryMode=extendedForPrepared".

import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

public class PgjdbcCheck {
    static final String TEXT = "\u00e9 \u2713 \"quoted\" \\ tab\t";
    static final String TYPED_COLUMNS = "i8, num, txt, ts, doc, bin, arr, uid";
    static final List<String> STEPS = Arrays.asList(
            "connect", "types_stored", "types_params", "div_zero", "after_error", "update",
            "soft_delete", "drop", "after_refusal", "tx_commit", "tx_rollback", "prepared",
            "prepared_tx", "batch", "batch_tx", "tx_write_first", "fetch_size_then_write");

    Connection auto;
    Connection tx;

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        try {
            Class.forName("org.postgresql.Driver");
        } catch (ClassNotFoundException e) {
            System.err.println("pgjdbc (org.postgresql.Driver) is not on the class path: " + e);
            System.exit(3);
        }
        PgjdbcCheck steps = new PgjdbcCheck();
        List<String> names = new ArrayList<>();
        // Every run connects first; the other steps use that connection.
        names.add("connect");
        for (String name : args.length > 0 ? Arrays.asList(args) : STEPS) {
            if (!name.equals("connect")) {
                names.add(name);
            }
        }
        for (String name : names) {
            Map<String, Object> record = new LinkedHashMap<>();
            record.put("step", name);
            try {
                Method method = PgjdbcCheck.class.getDeclaredMethod(name);
                @SuppressWarnings("unchecked")
                Map<String, Object> result = (Map<String, Object>) method.invoke(steps);
                record.put("ok", true);
                if (result != null) {
                    record.putAll(result);
                }
            } catch (java.lang.reflect.InvocationTargetException wrapped) {
                Throwable e = wrapped.getCause();
                record.put("ok", false);
                if (e instanceof SQLException) {
                    SQLException sql = (SQLException) e;
                    if (sql instanceof java.sql.BatchUpdateException && sql.getNextException() != null) {
                        sql = sql.getNextException(); // the server's error for the batch
                    }
                    record.put("sqlstate", sql.getSQLState());
                    String message = sql.getMessage();
                    String detail = null;
                    if (sql instanceof org.postgresql.util.PSQLException) {
                        org.postgresql.util.ServerErrorMessage server =
                                ((org.postgresql.util.PSQLException) sql).getServerErrorMessage();
                        if (server != null) {
                            message = server.getMessage();
                            detail = server.getDetail();
                        }
                    }
                    record.put("message", message);
                    record.put("detail", detail);
                } else {
                    record.put("sqlstate", null);
                    record.put("message", e.toString());
                }
            }
            out.println(json(record));
        }
        for (Connection c : new Connection[] {steps.auto, steps.tx}) {
            if (c != null) {
                c.close();
            }
        }
    }

    static Connection open(boolean autocommit) throws SQLException {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/"
                + System.getenv("PGDATABASE");
        java.util.Properties props = new java.util.Properties();
        props.setProperty("user", System.getenv("PGUSER"));
        props.setProperty("password", System.getenv("PGPASSWORD"));
        props.setProperty("sslmode", "disable");
        props.setProperty("connectTimeout", "10");
        props.setProperty("ApplicationName", "pgjdbc_check");
        // More connection properties, "name=value;name=value" (e.g. preferQueryMode=simple).
        String extra = System.getenv("PGJDBC_PROPERTIES");
        if (extra != null) {
            for (String pair : extra.split(";")) {
                if (!pair.isEmpty()) {
                    String[] kv = pair.split("=", 2);
                    props.setProperty(kv[0], kv[1]);
                }
            }
        }
        Connection c = DriverManager.getConnection(url, props);
        c.setAutoCommit(autocommit);
        return c;
    }

    static Map<String, Object> result(Object... pairs) {
        Map<String, Object> map = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            map.put((String) pairs[i], pairs[i + 1]);
        }
        return map;
    }

    static String hex(byte[] bytes) {
        StringBuilder sb = new StringBuilder();
        for (byte b : bytes) {
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }

    static List<Map<String, Object>> typedRows(ResultSet rs) throws SQLException {
        List<Map<String, Object>> rows = new ArrayList<>();
        while (rs.next()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("i8", Long.toString(rs.getLong(1)));
            row.put("num", rs.getBigDecimal(2).toPlainString());
            row.put("txt", rs.getString(3));
            row.put("ts", rs.getObject(4, OffsetDateTime.class).toInstant().toString());
            row.put("doc", new RawJson(rs.getString(5)));
            row.put("bin", hex(rs.getBytes(6)));
            Array arr = rs.getArray(7);
            row.put("arr", Arrays.asList((Integer[]) arr.getArray()));
            row.put("uid", rs.getObject(8, UUID.class).toString());
            rows.add(row);
        }
        return rows;
    }

    static List<List<Object>> rows(ResultSet rs) throws SQLException {
        List<List<Object>> rows = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<Object> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) {
                row.add(rs.getObject(i));
            }
            rows.add(row);
        }
        return rows;
    }

    Map<String, Object> connect() throws SQLException {
        auto = open(true);
        try (Statement st = auto.createStatement();
                ResultSet rs = st.executeQuery("SELECT current_user, current_setting('server_version_num')")) {
            rs.next();
            return result("user", rs.getString(1), "server_version_num", rs.getString(2));
        }
    }

    Connection tx() throws SQLException {
        if (tx == null) {
            tx = open(false);
        }
        return tx;
    }

    Map<String, Object> types_stored() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement(
                "SELECT " + TYPED_COLUMNS + " FROM typed WHERE id = ? AND txt = ?")) {
            ps.setInt(1, 1);
            ps.setString(2, TEXT);
            try (ResultSet rs = ps.executeQuery()) {
                return result("rows", typedRows(rs));
            }
        }
    }

    Map<String, Object> types_params() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement(
                "SELECT ?::int8, ?::numeric, ?::text, ?::timestamptz, ?::jsonb, ?::bytea, ?::int4[], ?::uuid")) {
            ps.setLong(1, 9007199254740993L);
            ps.setBigDecimal(2, new BigDecimal("-12345.678"));
            ps.setString(3, TEXT);
            ps.setObject(4, OffsetDateTime.of(2024, 2, 29, 12, 34, 56, 789_000_000, ZoneOffset.ofHours(5)));
            ps.setString(5, "{\"a\": [1, 2.5, {\"b\": null}], \"z\": \"\u00e9\"}");
            ps.setBytes(6, new byte[] {0, (byte) 255, 16});
            ps.setArray(7, auto.createArrayOf("int4", new Integer[] {7, null, -1, 2147483647}));
            ps.setObject(8, UUID.fromString("01020304-0506-0708-090a-0b0c0d0e0f10"));
            try (ResultSet rs = ps.executeQuery()) {
                return result("rows", typedRows(rs));
            }
        }
    }

    Map<String, Object> div_zero() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement("SELECT 1/?::int")) {
            ps.setInt(1, 0);
            ps.executeQuery().close();
        }
        return null;
    }

    Map<String, Object> after_error() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement("SELECT ?::int")) {
            ps.setInt(1, 1);
            try (ResultSet rs = ps.executeQuery()) {
                return result("rows", rows(rs));
            }
        }
    }

    Map<String, Object> update() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement("UPDATE items SET qty = qty + ? WHERE id = ?")) {
            ps.setInt(1, 5);
            ps.setInt(2, 2);
            return result("rowcount", ps.executeUpdate());
        }
    }

    Map<String, Object> soft_delete() throws SQLException {
        try (PreparedStatement ps = auto.prepareStatement("DELETE FROM items WHERE id BETWEEN ? AND ?")) {
            ps.setInt(1, 3);
            ps.setInt(2, 4);
            return result("rowcount", ps.executeUpdate());
        }
    }

    Map<String, Object> drop() throws SQLException {
        try (Statement st = auto.createStatement()) {
            st.execute("DROP TABLE keep");
        }
        return null;
    }

    Map<String, Object> after_refusal() throws SQLException {
        try (Statement st = auto.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*)::int FROM keep")) {
            return result("rows", rows(rs));
        }
    }

    int readQty(Connection c, int id) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("SELECT qty FROM items WHERE id = ?")) {
            ps.setInt(1, id);
            try (ResultSet rs = ps.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        }
    }

    int setQty(Connection c, int id, int qty) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE items SET qty = ? WHERE id = ?")) {
            ps.setInt(1, qty);
            ps.setInt(2, id);
            return ps.executeUpdate();
        }
    }

    // setAutoCommit(false): pgjdbc sends BEGIN in front of the transaction's first statement,
    // in the same batch. Here that first statement is a read.
    Map<String, Object> tx_commit() throws SQLException {
        Connection c = tx();
        try {
            int qty = readQty(c, 5);
            int updated = setQty(c, 5, qty + 1);
            int inserted;
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)")) {
                ps.setInt(1, 21);
                ps.setString(2, "item 21");
                ps.setInt(3, qty);
                inserted = ps.executeUpdate();
            }
            c.commit();
            return result("read", qty, "rowcounts", Arrays.asList(updated, inserted));
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    Map<String, Object> tx_rollback() throws SQLException {
        Connection c = tx();
        try {
            int qty = readQty(c, 6);
            int updated = setQty(c, 6, 0);
            return result("read", qty, "rowcounts", Arrays.asList(updated));
        } finally {
            c.rollback();
        }
    }

    // The transaction's first statement is a write: BEGIN and the UPDATE in one batch.
    Map<String, Object> tx_write_first() throws SQLException {
        Connection c = tx();
        try {
            int updated = setQty(c, 8, 1000);
            int qty = readQty(c, 8);
            c.commit();
            return result("read", qty, "rowcounts", Arrays.asList(updated));
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    List<String> serverPrepared(Connection c) throws SQLException {
        List<String> names = new ArrayList<>();
        try (Statement st = c.createStatement();
                ResultSet rs = st.executeQuery(
                        "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql ORDER BY statement")) {
            while (rs.next()) {
                names.add(rs.getString(1));
            }
        }
        return names;
    }

    // One PreparedStatement each, executed ten times: from the fifth execution on pgjdbc
    // uses a named server-side statement.
    Map<String, Object> bumpTenTimes(Connection c, int id) throws SQLException {
        List<Integer> counts = new ArrayList<>();
        List<Integer> reads = new ArrayList<>();
        try (PreparedStatement update = c.prepareStatement("UPDATE items SET qty = qty + 1 WHERE id = ?");
                PreparedStatement select = c.prepareStatement("SELECT qty FROM items WHERE id = ?")) {
            for (int i = 0; i < 10; i++) {
                update.setInt(1, id);
                counts.add(update.executeUpdate());
                select.setInt(1, id);
                try (ResultSet rs = select.executeQuery()) {
                    rs.next();
                    reads.add(rs.getInt(1));
                }
            }
            return result("rowcounts", counts, "reads", reads, "server_prepared", serverPrepared(c));
        }
    }

    Map<String, Object> prepared() throws SQLException {
        return bumpTenTimes(auto, 7);
    }

    // The same inside a transaction (autocommit off, begun with a read), committed.
    Map<String, Object> prepared_tx() throws SQLException {
        Connection c = tx();
        try {
            readQty(c, 9);
            Map<String, Object> out = bumpTenTimes(c, 9);
            c.commit();
            return out;
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    // executeBatch() of one PreparedStatement: Bind/Execute once per row, one Sync.
    Map<String, Object> runBatch(Connection c, int... ids) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("UPDATE items SET qty = qty + ? WHERE id = ?")) {
            for (int i = 0; i < ids.length; i++) {
                ps.setInt(1, i + 1);
                ps.setInt(2, ids[i]);
                ps.addBatch();
            }
            List<Integer> counts = new ArrayList<>();
            for (int n : ps.executeBatch()) {
                counts.add(n);
            }
            return result("rowcounts", counts);
        }
    }

    Map<String, Object> batch() throws SQLException {
        return runBatch(auto, 12, 13, 14);
    }

    // In a transaction begun with a read, committed.
    Map<String, Object> batch_tx() throws SQLException {
        Connection c = tx();
        try {
            readQty(c, 15);
            Map<String, Object> out = runBatch(c, 15, 16, 17);
            c.commit();
            return out;
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    // In a transaction, a read with a fetch size (a portal read a few rows at a time), then
    // an INSERT: pgjdbc sends the Close of the portal in front of the INSERT, in one batch.
    Map<String, Object> fetch_size_then_write() throws SQLException {
        Connection c = tx();
        try {
            int rows = 0;
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM items WHERE id < ? ORDER BY id")) {
                ps.setFetchSize(3);
                ps.setInt(1, 15);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        rows++;
                    }
                }
            }
            int inserted;
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)")) {
                ps.setInt(1, 22);
                ps.setString(2, "item 22");
                ps.setInt(3, 220);
                inserted = ps.executeUpdate();
            }
            c.commit();
            return result("read", rows, "rowcounts", Arrays.asList(inserted));
        } catch (SQLException e) {
            c.rollback();
            throw e;
        }
    }

    // Statement.executeBatch() of two different writes in autocommit: one batch, one Sync.
    Map<String, Object> statement_batch() throws SQLException {
        try (Statement st = auto.createStatement()) {
            st.addBatch("UPDATE items SET qty = qty + 1 WHERE id = 18");
            st.addBatch("UPDATE items SET qty = qty + 1 WHERE id = 19");
            List<Integer> counts = new ArrayList<>();
            for (int n : st.executeBatch()) {
                counts.add(n);
            }
            return result("rowcounts", counts);
        }
    }

    // JSON output, enough for what the steps return.
    static final class RawJson {
        final String text;

        RawJson(String text) {
            this.text = text;
        }
    }

    static String json(Object value) {
        StringBuilder sb = new StringBuilder();
        write(sb, value);
        return sb.toString();
    }

    static void write(StringBuilder sb, Object value) {
        if (value == null) {
            sb.append("null");
        } else if (value instanceof RawJson) {
            sb.append(((RawJson) value).text);
        } else if (value instanceof String) {
            sb.append('"');
            for (char ch : ((String) value).toCharArray()) {
                if (ch == '"' || ch == '\\') {
                    sb.append('\\').append(ch);
                } else if (ch < 0x20 || ch > 0x7e) {
                    sb.append(String.format("\\u%04x", (int) ch));
                } else {
                    sb.append(ch);
                }
            }
            sb.append('"');
        } else if (value instanceof Number || value instanceof Boolean) {
            sb.append(value);
        } else if (value instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                write(sb, e.getKey().toString());
                sb.append(':');
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (value instanceof List) {
            sb.append('[');
            boolean first = true;
            for (Object item : (List<?>) value) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                write(sb, item);
            }
            sb.append(']');
        } else {
            write(sb, value.toString());
        }
    }
}
