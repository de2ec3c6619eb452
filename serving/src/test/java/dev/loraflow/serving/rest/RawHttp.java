package dev.loraflow.serving.rest;

import io.restassured.RestAssured;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

/**
 * One HTTP/1.1 exchange over a plain socket to the test server, for what a client library hides: headers
 * announcing a body that never comes, and a client that leaves in the middle of an answer.
 */
final class RawHttp implements AutoCloseable {

    private final Socket socket;
    private final BufferedReader in;

    private RawHttp(Socket socket) throws IOException {
        this.socket = socket;
        this.in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
    }

    /** Sends the request line and headers (with Content-Length {@code contentLength}), then {@code body}, possibly none of it. */
    static RawHttp send(String method, String path, Map<String, String> headers, long contentLength, byte[] body,
                        Duration readTimeout) throws IOException {
        Socket socket = new Socket("localhost", RestAssured.port);
        socket.setSoTimeout(Math.toIntExact(readTimeout.toMillis()));
        StringBuilder head = new StringBuilder(method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n");
        headers.forEach((name, value) -> head.append(name).append(": ").append(value).append("\r\n"));
        head.append("Content-Length: ").append(contentLength).append("\r\n\r\n");
        OutputStream out = socket.getOutputStream();
        out.write(head.toString().getBytes(StandardCharsets.UTF_8));
        out.write(body);
        out.flush();
        return new RawHttp(socket);
    }

    /** A JSON request sent whole. */
    static RawHttp post(String path, Map<String, String> headers, String json) throws IOException {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        Map<String, String> withType = new java.util.HashMap<>(headers);
        withType.put("Content-Type", "application/json");
        return send("POST", path, withType, body.length, body, Duration.ofSeconds(60));
    }

    /** The status code of the answer's status line. */
    int status() throws IOException {
        String line = in.readLine();
        if (line == null) {
            throw new IOException("the server closed the connection without answering");
        }
        return Integer.parseInt(line.split(" ")[1]);
    }

    /** Reads the answer up to and including the first line that starts with {@code prefix}; that line. */
    String lineStartingWith(String prefix) throws IOException {
        for (String line; (line = in.readLine()) != null; ) {
            if (line.startsWith(prefix)) {
                return line;
            }
        }
        throw new IOException("the answer ended without a line starting with " + prefix);
    }

    /** Leaves: the connection closes with the answer unread. */
    @Override
    public void close() throws IOException {
        socket.close();
    }
}
