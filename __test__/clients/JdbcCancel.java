// pgjdbc's query timeout (a CancelRequest on a new connection after 1 s) on `select pg_sleep(30)`:
// prints "<SQLSTATE> in <ms> ms", then "ok" once the same connection answers again.
// java -cp postgresql.jar JdbcCancel.java url user password
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;

public class JdbcCancel {
    public static void main(String[] args) throws SQLException {
        try (Connection connection = DriverManager.getConnection(args[0], args[1], args[2])) {
            try (Statement statement = connection.createStatement()) {
                statement.setQueryTimeout(1);
                long started = System.nanoTime();
                try {
                    statement.execute("select pg_sleep(30)");
                    System.out.println("not cancelled");
                } catch (SQLException e) {
                    System.out.println(e.getSQLState() + " in " + (System.nanoTime() - started) / 1_000_000 + " ms");
                }
            }
            try (Statement statement = connection.createStatement()) {
                statement.execute("select 1");
                System.out.println("ok");
            }
        }
    }
}
