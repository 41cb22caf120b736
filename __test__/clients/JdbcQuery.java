// pgjdbc against an onQuery server: prepareThreshold=1 (server-prepared statements and binary
// results after the first run), a fetchSize cursor in a transaction, types and errors.
import java.sql.*;

public class JdbcQuery {
  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/d?user=u&sslmode=disable&prepareThreshold=1&binaryTransfer=true";
    try (Connection c = DriverManager.getConnection(url)) {
      try (PreparedStatement ps = c.prepareStatement("select * from items where id = ?")) {
        for (int id : new int[] {4, 5, 6}) {
          ps.setInt(1, id);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("item " + rs.getInt(1) + " " + rs.getString(2) + " " + rs.getDouble(3) + " " + rs.getTimestamp(4).toInstant());
          }
        }
      }
      try (PreparedStatement ps = c.prepareStatement("select types")) {
        for (int run = 0; run < 2; run++) {
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("types " + rs.getBoolean("bool_col") + " " + rs.getLong("int8_col") + " " + rs.getBigDecimal("numeric_col")
                + " " + rs.getString("uuid_col") + " " + rs.getDate("date_col") + " " + rs.getTimestamp("timestamptz_col").toInstant()
                + " " + rs.getString("text_col") + " " + java.util.Arrays.toString((Object[]) rs.getArray("int4_array_col").getArray()));
          }
        }
      }
      c.setAutoCommit(false);
      try (PreparedStatement ps = c.prepareStatement("select gen(?)")) {
        ps.setFetchSize(100);
        ps.setInt(1, 2500);
        int n = 0;
        long sum = 0;
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) { n++; sum += rs.getInt(1); }
        }
        System.out.println("cursor " + n + " " + sum);
      }
      c.commit();
      c.setAutoCommit(true);
      try (Statement s = c.createStatement()) {
        s.executeQuery("select fail");
      } catch (SQLException e) {
        System.out.println("error " + e.getSQLState());
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
        rs.next();
        System.out.println("after " + rs.getInt(1));
      }
    }
  }
}
