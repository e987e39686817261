%% server-mtls: the mTLS server of the contract (images/CONTRACT.md) on Erlang/OTP 25's
%% ssl application (Debian bookworm: OTP 25.2.3, ssl-10.8.7), a minimal HTTP/1.1 answer
%% over the ssl socket, one process per connection.
%%
%% The stack is used as the ssl User's Guide shows it for a server that verifies its
%% clients: ssl:listen with certfile/keyfile, cacertfile (from --root-ca; without it the
%% OS trust store, public_key:cacerts_get(), as the OTP 25 docs suggest for `cacerts`),
%% {verify, verify_peer}.
%%
%% Report mode: {fail_if_no_peer_cert, false} and a verify_fun, given to ssl:handshake/3
%% for this connection, that records the first {bad_cert, Reason} the path validation
%% hands it and accepts, so the handshake completes; the body's reason is that term as
%% Erlang prints it ({bad_cert,unknown_ca}), or no_peercert (ssl:peercert/1's error) when
%% the client sent no certificate. Unknown extensions go back to ssl as {unknown, State},
%% as the documented default verify_fun does.
%%
%% --require: {fail_if_no_peer_cert, true} and no verify_fun: ssl's own verification and
%% its own alert.
%%
%% --auth-path PATH: exit 127 in TLS 1.2 and 1.3 (and without --tls-max). OTP 25's ssl
%% sends a CertificateRequest in every handshake of a verify_peer connection, renegotiations
%% included, and in none of a verify_none one (tls_dtls_connection.erl request_client_cert/2);
%% the options are fixed by ssl:handshake (ssl:setopts/2 takes socket options only,
%% ssl:renegotiate/1 none, ssl:handshake_continue/3 only in the first handshake's paused
%% hello), so a renegotiation cannot ask for a certificate the first handshake did not.
%% TLS 1.3 post-handshake authentication is not implemented: the post_handshake_auth
%% extension is only a constant (tls_handshake_1_3.hrl) and a TLS 1.3 connection takes
%% only NewSessionTicket and KeyUpdate after the handshake (tls_connection_1_3.erl).
-module(server_mtls).
-export([main/0]).

-include_lib("public_key/include/public_key.hrl").

-define(USAGE, "usage: server-mtls --cert FILE --key FILE [--root-ca FILE] [--require] "
               "[--tls-max 1.2|1.3] [--crl FILE] [--ca-names FILE|none] [--auth-path PATH] [--port N]").
%% Why --auth-path cannot be honoured, by TLS version (ssl-10.8.7 sources as Debian ships them).
-define(NO_RENEGOTIATION_AUTH,
        "--auth-path is not supported in TLS 1.2: OTP 25's ssl sends a CertificateRequest in every "
        "handshake of a verify_peer connection, renegotiations included, and in none of a verify_none one "
        "(ssl-10.8.7 tls_dtls_connection.erl:1315-1342 request_client_cert/2), and no call changes verify "
        "after ssl:handshake: ssl:renegotiate/1 takes no options (ssl.erl:1344-1362), ssl:setopts/2 only socket "
        "options (ssl.erl:1187-1213, ssl_gen_statem.erl:1983-2068), ssl:handshake_continue/3 only the first "
        "handshake's paused hello (tls_dtls_connection.erl:170-179), so the server cannot ask for the "
        "certificate by renegotiation only").
-define(NO_POST_HANDSHAKE_AUTH,
        "--auth-path is not supported in TLS 1.3: OTP 25's ssl has no post-handshake authentication: "
        "the post_handshake_auth extension is only defined (ssl-10.8.7 tls_handshake_1_3.hrl:52), never "
        "sent, read or acted on, and after the handshake a TLS 1.3 connection handles only NewSessionTicket "
        "and KeyUpdate (tls_connection_1_3.erl:540-563); there is no call to send a CertificateRequest").
-define(TIMEOUT, 10000).

main() ->
    Args = init:get_plain_arguments(),
    Opts = parse(Args, #{require => false, port => 9443}),
    case maps:get(version, Opts, false) of
        true -> out("~ts~n", [mtls_common:version()]), mtls_common:halt(0);
        false -> ok
    end,
    case maps:get(help, Opts, false) of
        true -> out("~ts~n", [?USAGE]), mtls_common:halt(0);
        false -> ok
    end,
    case maps:get(ca_names, Opts, undefined) of
        undefined -> ok;
        _ -> fail(127, "--ca-names is not supported: OTP 25's ssl names the CAs of its certificate database "
                       "(cacertfile) in a CertificateRequest; its only option is certificate_authorities = false, "
                       "which drops the TLS 1.3 extension and is refused without TLS 1.3 (ssl.erl handle_option "
                       "certificate_authorities; tls_handshake_1_3.erl certificate_request/5)", [])
    end,
    case {maps:get(auth_path, Opts, undefined), maps:get(tls_max, Opts, undefined)} of
        {undefined, _} -> ok;
        {_, "1.2"} -> fail(127, "~ts", [?NO_RENEGOTIATION_AUTH]);
        {_, "1.3"} -> fail(127, "~ts", [?NO_POST_HANDSHAKE_AUTH]);
        {_, undefined} -> fail(127, "~ts; ~ts", [?NO_RENEGOTIATION_AUTH, ?NO_POST_HANDSHAKE_AUTH])
    end,
    Cert = required(cert, Opts),
    Key = required(key, Opts),
    lists:foreach(fun({Flag, Path}) -> mtls_common:readable(server, Flag, Path) end,
                  [{"cert", Cert}, {"key", Key}]
                  ++ [{"root-ca", P} || P <- [maps:get(root_ca, Opts, undefined)], P =/= undefined]
                  ++ [{"crl", P} || P <- [maps:get(crl, Opts, undefined)], P =/= undefined]),
    mtls_common:log_to_stderr(),
    {ok, _} = application:ensure_all_started(ssl),
    Keylog = mtls_common:keylog_file(server),
    Trust = case maps:get(root_ca, Opts, undefined) of
                undefined -> [{cacerts, public_key:cacerts_get()}];
                RootCA -> [{cacertfile, RootCA}]
            end,
    Crl = case maps:get(crl, Opts, undefined) of
              undefined -> [];
              CrlFile ->
                  %% The ssl User's Guide's way to give CRLs that are not fetched from a
                  %% distribution point: insert them into ssl_crl_cache's internal cache
                  %% (looked up by issuer for certificates without a CRL DP).
                  case ssl_crl_cache:insert({file, CrlFile}) of
                      ok -> ok;
                      Error -> fail(2, "cannot use --crl ~ts: ~0p", [CrlFile, Error])
                  end,
                  [{crl_check, true}, {crl_cache, {ssl_crl_cache, {internal, []}}}]
          end,
    Versions = case maps:get(tls_max, Opts, undefined) of
                   undefined -> [];
                   "1.2" -> [{versions, ['tlsv1.2']}];
                   "1.3" -> [{versions, ['tlsv1.3', 'tlsv1.2']}]
               end,
    Require = maps:get(require, Opts),
    Port = maps:get(port, Opts),
    ListenOpts = [binary, {active, false}, {reuseaddr, true},
                  {certfile, Cert}, {keyfile, Key},
                  {verify, verify_peer}, {fail_if_no_peer_cert, Require}]
                 ++ Trust ++ Crl ++ Versions
                 ++ [{keep_secrets, true} || Keylog =/= undefined],
    LSock = case ssl:listen(Port, ListenOpts) of
                {ok, L} -> L;
                {error, {options, _} = Why} ->
                    fail(2, "cannot use the options: ~ts", [ssl:format_error(Why)]);
                {error, Why} ->
                    fail(1, "cannot listen on port ~B: ~ts", [Port, ssl:format_error(Why)])
            end,
    out("Example mTLS app listening at https://localhost:~B~n", [Port]),
    Ctx = #{require => Require, keylog => Keylog},
    accept(LSock, Ctx).

accept(LSock, Ctx) ->
    case ssl:transport_accept(LSock) of
        {ok, TSock} ->
            Pid = spawn(fun() -> receive go -> connection(TSock, Ctx) end end),
            case ssl:controlling_process(TSock, Pid) of
                ok -> Pid ! go;
                _ -> exit(Pid, kill), ssl:close(TSock)
            end;
        {error, closed} ->
            fail(1, "listening socket closed", []);
        {error, _} ->
            ok
    end,
    accept(LSock, Ctx).

%% One connection: the handshake (report mode adds the recording verify_fun), the log
%% line, the HTTP exchange.
connection(TSock, #{require := Require, keylog := Keylog}) ->
    Self = self(),
    HsOpts = case Require of
                 true -> [];
                 false -> [{verify_fun, {fun(Cert, Event, State) -> report_fun(Self, Cert, Event, State) end, []}}]
             end,
    case ssl:handshake(TSock, HsOpts, ?TIMEOUT) of
        {ok, Sock} ->
            mtls_common:write_keylog(Keylog, Sock),
            Reason = case ssl:peercert(Sock) of
                         {ok, Der} ->
                             Subject = "\"" ++ common_name(Der) ++ "\"",
                             first_reason();
                         {error, NoCert} ->
                             Subject = "none",
                             flush_reasons(),
                             atom_to_list(NoCert)
                     end,
            Proto = protocol(Sock),
            Body = case Reason of
                       undefined ->
                           log("handshake ~ts subject=~ts authorized=true", [Proto, Subject]),
                           "{\"mTLSValid\": true}\n";
                       _ ->
                           log("handshake ~ts subject=~ts authorized=false reason=~ts", [Proto, Subject, Reason]),
                           "{\"mTLSValid\": false, \"reason\": " ++ mtls_common:json_string(Reason) ++ "}\n"
                   end,
            http(Sock, Body);
        {error, Why} ->
            log("handshake-failed ~ts", [mtls_common:one_line(Why)])
    end.

%% The verify_fun of report mode: record every {bad_cert, _} and accept it, as the
%% accept-everything verify_fun of ssl's manual does; an unknown critical extension is
%% recorded as {bad_cert, unknown_critical_extension} and accepted (answering {unknown, _}
%% would make public_key throw that reason without asking again: pubkey_cert.erl
%% verify_fun/4, so the handshake would fail); other extensions stay unknown; valid and
%% valid_peer are valid.
report_fun(Owner, _Cert, {bad_cert, _} = Reason, State) ->
    Owner ! {verify_reason, Reason},
    {valid, State};
report_fun(Owner, _Cert, {extension, #'Extension'{critical = true}}, State) ->
    Owner ! {verify_reason, {bad_cert, unknown_critical_extension}},
    {valid, State};
report_fun(_Owner, _Cert, {extension, _}, State) ->
    {unknown, State};
report_fun(_Owner, _Cert, valid, State) ->
    {valid, State};
report_fun(_Owner, _Cert, valid_peer, State) ->
    {valid, State}.

first_reason() ->
    receive
        {verify_reason, Reason} ->
            flush_reasons(),
            mtls_common:one_line(Reason)
    after 0 ->
        undefined
    end.

flush_reasons() ->
    receive {verify_reason, _} -> flush_reasons() after 0 -> ok end.

protocol(Sock) ->
    case ssl:connection_information(Sock, [protocol]) of
        {ok, [{protocol, 'tlsv1.3'}]} -> "TLSv1.3";
        {ok, [{protocol, 'tlsv1.2'}]} -> "TLSv1.2";
        {ok, [{protocol, Other}]} -> atom_to_list(Other);
        _ -> "unknown"
    end.

common_name(Der) ->
    #'OTPCertificate'{tbsCertificate = #'OTPTBSCertificate'{subject = {rdnSequence, RDNs}}} =
        public_key:pkix_decode_cert(Der, otp),
    CNs = [Value || Set <- RDNs, #'AttributeTypeAndValue'{type = ?'id-at-commonName', value = Value} <- Set],
    case CNs of
        [CN | _] -> name_string(CN);
        [] -> ""
    end.

name_string({_Type, Value}) when is_binary(Value) -> unicode:characters_to_list(Value);
name_string({_Type, Value}) when is_list(Value) -> Value;
name_string(Value) when is_binary(Value) -> unicode:characters_to_list(Value);
name_string(Value) when is_list(Value) -> Value;
name_string(_) -> "".

%% Minimal HTTP/1.1: read the request head (or give up after the timeout), answer 200 with
%% the body and Connection: close, then close with close_notify.
http(Sock, Body) ->
    _ = read_head(Sock, <<>>),
    Bin = unicode:characters_to_binary(Body),
    Response = [<<"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ">>,
                integer_to_binary(byte_size(Bin)), <<"\r\nConnection: close\r\n\r\n">>, Bin],
    _ = ssl:send(Sock, Response),
    ssl:close(Sock).

read_head(Sock, Acc) ->
    case binary:match(Acc, <<"\r\n\r\n">>) of
        nomatch when byte_size(Acc) < 65536 ->
            case ssl:recv(Sock, 0, ?TIMEOUT) of
                {ok, Data} -> read_head(Sock, <<Acc/binary, Data/binary>>);
                Error -> Error
            end;
        _ ->
            ok
    end.

%% --- command line ------------------------------------------------------------------
parse([], Acc) -> Acc;
parse(["--require" | Rest], Acc) -> parse(Rest, Acc#{require => true});
parse(["--version" | Rest], Acc) -> parse(Rest, Acc#{version => true});
parse(["--help" | Rest], Acc) -> parse(Rest, Acc#{help => true});
parse(["-h" | Rest], Acc) -> parse(Rest, Acc#{help => true});
parse([Flag, Value | Rest], Acc) when Flag =:= "--cert"; Flag =:= "--key"; Flag =:= "--root-ca";
                                     Flag =:= "--crl"; Flag =:= "--tls-max"; Flag =:= "--port";
                                     Flag =:= "--ca-names"; Flag =:= "--auth-path" ->
    parse(Rest, value(Flag, Value, Acc));
parse([Flag], _) when Flag =:= "--cert"; Flag =:= "--key"; Flag =:= "--root-ca";
                      Flag =:= "--crl"; Flag =:= "--tls-max"; Flag =:= "--port"; Flag =:= "--ca-names";
                      Flag =:= "--auth-path" ->
    usage_error("option ~ts needs a value", [Flag]);
parse([Other | _], _) ->
    usage_error("unknown option ~ts", [Other]).

value("--cert", V, Acc) -> Acc#{cert => V};
value("--key", V, Acc) -> Acc#{key => V};
value("--root-ca", V, Acc) -> Acc#{root_ca => V};
value("--crl", V, Acc) -> Acc#{crl => V};
value("--ca-names", V, Acc) -> Acc#{ca_names => V};
value("--auth-path", [$/ | _] = V, Acc) -> Acc#{auth_path => V};
value("--auth-path", V, _) -> fail(2, "--auth-path must be a path starting with /, got ~0tp", [V]);
value("--tls-max", V, Acc) when V =:= "1.2"; V =:= "1.3" -> Acc#{tls_max => V};
value("--tls-max", V, _) -> usage_error("--tls-max must be 1.2 or 1.3, got ~ts", [V]);
value("--port", V, Acc) ->
    case string:to_integer(V) of
        {N, ""} when N > 0, N < 65536 -> Acc#{port => N};
        _ -> usage_error("--port must be 1-65535, got ~ts", [V])
    end.

required(Name, Opts) ->
    case maps:get(Name, Opts, undefined) of
        undefined -> fail(1, "missing required option --~ts", [atom_to_list(Name)]);
        V -> V
    end.

usage_error(Format, Args) ->
    io:format(standard_error, "server-mtls: " ++ Format ++ "~n~ts~n", Args ++ [?USAGE]),
    mtls_common:halt(2).

fail(Code, Format, Args) ->
    io:format(standard_error, "server-mtls: " ++ Format ++ "~n", Args),
    mtls_common:halt(Code).

out(Format, Args) -> io:format(Format, Args).

log(Format, Args) -> io:format(Format ++ "~n", Args).
