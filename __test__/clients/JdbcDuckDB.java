// pgjdbc against examples/duckdb.mjs: server-prepared statements from the first run
// (prepareThreshold=1, so every statement is described before it runs) with binary results,
// typed parameters, a fetchSize cursor read while other statements run, and errors.
// Prints one line per check; the test compares them.
import java.math.BigDecimal;
import java.sql.*;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.util.Arrays;

public class JdbcDuckDB {
  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/d?user=u&sslmode=disable&prepareThreshold=1&binaryTransfer=true";
    try (Connection c = DriverManager.getConnection(url)) {
      try (Statement s = c.createStatement()) {
        s.execute("create table jdbc_items (id int, name text, price double, day date, stamp timestamp, amount decimal(12, 4), ok bool)");
      }
      try (PreparedStatement ps = c.prepareStatement("insert into jdbc_items values (?, ?, ?, ?, ?, ?, ?)")) {
        for (int id = 1; id <= 3; id++) {
          ps.setInt(1, id);
          ps.setString(2, "jdbc " + id);
          ps.setDouble(3, id * 0.5);
          // java.time values go as plain dates and timestamps. setDate would send '2024-03-01 +00',
          // which the gateway's date decoder refuses once the statement is described as taking a date.
          ps.setObject(4, LocalDate.of(2024, 3, id));
          ps.setObject(5, LocalDateTime.of(2024, 3, 1, 10, 0, 0, 250_000_000));
          ps.setBigDecimal(6, new BigDecimal("1234.5678").multiply(BigDecimal.valueOf(id)));
          ps.setBoolean(7, id % 2 == 1);
          System.out.println("insert " + ps.executeUpdate());
        }
      }
      try (PreparedStatement ps = c.prepareStatement("select id, name, price, day, stamp, amount, ok, [id, id * 10] as list from jdbc_items where id = ?")) {
        for (int id : new int[] {1, 2}) {
          ps.setInt(1, id);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("row " + rs.getInt("id") + " " + rs.getString("name") + " " + rs.getDouble("price") + " " + rs.getDate("day")
                + " " + rs.getTimestamp("stamp") + " " + rs.getBigDecimal("amount") + " " + rs.getBoolean("ok")
                + " " + Arrays.toString((Object[]) rs.getArray("list").getArray()));
          }
        }
      }
      // DuckDB cannot type `?` here by itself: the declared int4 and varchar stand.
      try (PreparedStatement ps = c.prepareStatement("select ? as n, ? as s")) {
        ps.setInt(1, 7);
        ps.setString(2, "seven");
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          System.out.println("untyped " + rs.getMetaData().getColumnTypeName(1) + " " + rs.getInt(1) + " " + rs.getString(2));
        }
      }
      c.setAutoCommit(false);
      try (PreparedStatement ps = c.prepareStatement("select i from range(?) t(i)");
           Statement other = c.createStatement()) {
        ps.setFetchSize(100);
        ps.setLong(1, 5000);
        long n = 0;
        long sum = 0;
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            n++;
            sum += rs.getLong(1);
            // Another statement while the cursor is open: DuckDB would end the cursor's stream.
            if (n == 150) {
              try (ResultSet o = other.executeQuery("select count(*) from jdbc_items")) {
                o.next();
                System.out.println("meanwhile " + o.getLong(1));
              }
            }
          }
        }
        System.out.println("cursor " + n + " " + sum);
      }
      c.commit();
      c.setAutoCommit(true);
      try (Statement s = c.createStatement()) {
        s.executeQuery("select * from missing_table");
      } catch (SQLException e) {
        System.out.println("error " + e.getSQLState());
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select count(*) from jdbc_items")) {
        rs.next();
        System.out.println("after " + rs.getInt(1));
      }
    }
  }
}
