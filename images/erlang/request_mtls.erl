%% request-mtls: the mTLS client of the contract (images/CONTRACT.md) on Erlang/OTP 25's
%% ssl application: ssl:connect with {verify, verify_peer}, cacertfile (from --root-ca;
%% without it the OS trust store, public_key:cacerts_get()), certfile/keyfile, and the
%% default server name handling (the host given to connect is the SNI name and the name
%% the server's certificate is checked against), then GET / and the body on stdout.
%%
%% On failure: "   Error Code: <the head of Erlang's error term>" (tls_alert, closed,
%% timeout, options, econnrefused...) and "Error Message: <the whole term>" on stderr, exit 1.
-module(request_mtls).
-export([main/0]).

-define(USAGE, "usage: request-mtls [--cert FILE --key FILE] [--root-ca FILE] [--url URL]").
-define(TIMEOUT, 10000).

main() ->
    Opts = parse(init:get_plain_arguments(), #{url => "https://localhost:9443"}),
    case maps:get(help, Opts, false) of
        true -> io:format("~ts~n", [?USAGE]), mtls_common:halt(0);
        false -> ok
    end,
    case maps:get(version, Opts, false) of
        true -> io:format("~ts~n", [mtls_common:version()]), mtls_common:halt(0);
        false -> ok
    end,
    %% The contract: --cert and --key come together; one alone is exit 1, naming the other.
    case {maps:is_key(cert, Opts), maps:is_key(key, Opts)} of
        {true, false} -> missing("--key is required with --cert");
        {false, true} -> missing("--cert is required with --key");
        _ -> ok
    end,
    {Host, Port, Path} = url(maps:get(url, Opts)),
    Files = [{"cert", maps:get(cert, Opts, undefined)}, {"key", maps:get(key, Opts, undefined)},
             {"root-ca", maps:get(root_ca, Opts, undefined)}],
    [mtls_common:readable(client, Flag, P) || {Flag, P} <- Files, P =/= undefined],
    mtls_common:log_to_stderr(),
    {ok, _} = application:ensure_all_started(ssl),
    Keylog = mtls_common:keylog_file(client),
    Trust = case maps:get(root_ca, Opts, undefined) of
                undefined -> [{cacerts, public_key:cacerts_get()}];
                RootCA -> [{cacertfile, RootCA}]
            end,
    Own = [{certfile, C} || C <- [maps:get(cert, Opts, undefined)], C =/= undefined]
          ++ [{keyfile, K} || K <- [maps:get(key, Opts, undefined)], K =/= undefined],
    ConnectOpts = [binary, {active, true}, {verify, verify_peer}] ++ Trust ++ Own
                  ++ [{keep_secrets, true} || Keylog =/= undefined],
    case ssl:connect(Host, Port, ConnectOpts, ?TIMEOUT) of
        {ok, Sock} ->
            mtls_common:write_keylog(Keylog, Sock),
            request(Sock, Host, Port, Path);
        {error, Why} ->
            failed(Why)
    end.

request(Sock, Host, Port, Path) ->
    Request = ["GET ", Path, " HTTP/1.1\r\nHost: ", Host, ":", integer_to_list(Port),
               "\r\nUser-Agent: request-mtls (Erlang/OTP ssl)\r\nAccept: */*\r\nConnection: close\r\n\r\n"],
    %% A failed send means the connection is gone; why it went arrives as a message below.
    _ = ssl:send(Sock, Request),
    Response = receive_all(Sock, <<>>),
    case binary:split(Response, <<"\r\n\r\n">>) of
        [Head, Body] ->
            io:put_chars(body(Head, Body)),
            mtls_common:halt(0);
        _ when Response =:= <<>> ->
            failed(closed);
        _ ->
            failed({incomplete_response, Response})
    end.

%% The response body as HTTP/1.1 frames it: chunked, Content-Length, or up to the close.
body(Head, Body) ->
    Fields = [list_to_tuple([string:lowercase(string:trim(Part)) || Part <- binary:split(Line, <<":">>)])
              || Line <- tl(binary:split(Head, <<"\r\n">>, [global]))],
    case {lists:keyfind(<<"transfer-encoding">>, 1, Fields), lists:keyfind(<<"content-length">>, 1, Fields)} of
        {{_, <<"chunked">>}, _} -> dechunk(Body, []);
        {_, {_, Length}} ->
            case string:to_integer(binary_to_list(Length)) of
                {N, ""} when N =< byte_size(Body) -> binary:part(Body, 0, N);
                _ -> Body
            end;
        _ -> Body
    end.

dechunk(Data, Acc) ->
    case binary:split(Data, <<"\r\n">>) of
        [SizeLine, Rest] ->
            [Hex | _] = binary:split(SizeLine, <<";">>),
            case catch binary_to_integer(string:trim(Hex), 16) of
                0 -> lists:reverse(Acc);
                N when is_integer(N), N =< byte_size(Rest) ->
                    <<Chunk:N/binary, After/binary>> = Rest,
                    Next = case After of <<"\r\n", R/binary>> -> R; _ -> After end,
                    dechunk(Next, [Chunk | Acc]);
                _ -> lists:reverse(Acc)
            end;
        _ -> lists:reverse(Acc)
    end.

%% The socket is in {active, true} mode from ssl:connect on: whatever ends the connection
%% after the handshake (the server's alert in TLS 1.3, a close) reaches this process as a
%% message whenever it happens. In passive mode ssl drops an alert that arrives while no
%% recv is pending (ssl_gen_statem.erl alert_user / send_or_reply), and the next call
%% only says closed.
receive_all(Sock, Acc) ->
    receive
        {ssl, Sock, Data} -> receive_all(Sock, <<Acc/binary, Data/binary>>);
        {ssl_closed, Sock} -> Acc;
        {ssl_error, Sock, Why} when Acc =:= <<>> -> failed(Why);
        {ssl_error, Sock, _} -> Acc
    after ?TIMEOUT ->
        failed(timeout)
    end.

failed(Why) ->
    io:format(standard_error, "   Error Code: ~ts~nError Message: ~ts~n", [code(Why), mtls_common:one_line(Why)]),
    mtls_common:halt(1).

code(Atom) when is_atom(Atom) -> atom_to_list(Atom);
code(Tuple) when is_tuple(Tuple), tuple_size(Tuple) > 0, is_atom(element(1, Tuple)) ->
    atom_to_list(element(1, Tuple));
code(_) -> "error".

url(Url) ->
    case uri_string:parse(Url) of
        #{scheme := "https", host := Host} = Map ->
            Port = maps:get(port, Map, 443),
            Path = case maps:get(path, Map, "") of "" -> "/"; P -> P end,
            Query = case maps:get(query, Map, undefined) of undefined -> ""; Q -> "?" ++ Q end,
            {Host, Port, Path ++ Query};
        _ ->
            usage_error("--url must be an https URL, got ~ts", [Url])
    end.

parse([], Acc) -> Acc;
parse(["--help" | Rest], Acc) -> parse(Rest, Acc#{help => true});
parse(["-h" | Rest], Acc) -> parse(Rest, Acc#{help => true});
parse(["--version" | Rest], Acc) -> parse(Rest, Acc#{version => true});
parse(["--cert", V | Rest], Acc) -> parse(Rest, Acc#{cert => V});
parse(["--key", V | Rest], Acc) -> parse(Rest, Acc#{key => V});
parse(["--root-ca", V | Rest], Acc) -> parse(Rest, Acc#{root_ca => V});
parse(["--url", V | Rest], Acc) -> parse(Rest, Acc#{url => V});
parse([Flag], _) when Flag =:= "--cert"; Flag =:= "--key"; Flag =:= "--root-ca"; Flag =:= "--url" ->
    usage_error("option ~ts needs a value", [Flag]);
parse([Other | _], _) ->
    usage_error("unknown option ~ts", [Other]).

missing(Message) ->
    io:format(standard_error, "request-mtls: ~ts~n", [Message]),
    mtls_common:halt(1).

usage_error(Format, Args) ->
    io:format(standard_error, "request-mtls: " ++ Format ++ "~n~ts~n", Args ++ [?USAGE]),
    mtls_common:halt(2).
