%% Helpers shared by server_mtls and request_mtls: the version line, file checks, the
%% SSLKEYLOGFILE writer, one-line term text, JSON strings, halting with flushed output.
-module(mtls_common).
-export([log_to_stderr/0, version/0, readable/3, keylog_file/1, write_keylog/2, one_line/1, json_string/1, halt/1]).

%% ssl logs its alerts as notice reports through logger's default handler, which writes
%% to standard_io: keep them, one line each, on standard_error, so stdout holds only what
%% the contract puts there (the client's body, the server's connection lines).
log_to_stderr() ->
    _ = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h,
                            #{config => #{type => standard_error},
                              formatter => {logger_formatter, #{single_line => true}}}).

%% "Erlang/OTP 25.2.3 ssl-10.8.7 (erts-13.1.5)": the OTP release, the ssl application's
%% version, the runtime's.
version() ->
    OtpFile = filename:join([code:root_dir(), "releases", erlang:system_info(otp_release), "OTP_VERSION"]),
    Otp = case file:read_file(OtpFile) of
              {ok, Bin} -> string:trim(binary_to_list(Bin));
              _ -> erlang:system_info(otp_release)
          end,
    ok = application:load(ssl),
    {ok, Ssl} = application:get_key(ssl, vsn),
    lists:flatten(io_lib:format("Erlang/OTP ~ts ssl-~ts (erts-~ts)", [Otp, Ssl, erlang:system_info(version)])).

%% An unreadable file given to a flag: exit 2 with a message naming the flag.
readable(Role, Flag, Path) ->
    case file:open(Path, [read, binary]) of
        {ok, Fd} ->
            file:close(Fd),
            case filelib:is_dir(Path) of
                true -> unreadable(Role, Flag, Path, eisdir);
                false -> ok
            end;
        {error, Why} ->
            unreadable(Role, Flag, Path, Why)
    end.

unreadable(Role, Flag, Path, Why) ->
    io:format(standard_error, "~ts: cannot read --~ts ~ts: ~ts~n",
              [role_name(Role), Flag, Path, file:format_error(Why)]),
    ?MODULE:halt(2).

role_name(server) -> "server-mtls";
role_name(client) -> "request-mtls".

%% SSLKEYLOGFILE, when set: the path to append NSS key log lines to.
keylog_file(Role) ->
    case os:getenv("SSLKEYLOGFILE") of
        false -> undefined;
        "" -> undefined;
        Path ->
            case file:write_file(Path, <<>>, [append]) of
                ok -> Path;
                {error, Why} ->
                    io:format(standard_error, "~ts: cannot open SSLKEYLOGFILE ~ts: ~ts~n",
                              [role_name(Role), Path, file:format_error(Why)]),
                    ?MODULE:halt(2)
            end
    end.

%% ssl:connection_information(Sock, [keylog]) gives the NSS key log lines of a connection
%% opened with {keep_secrets, true} (OTP 25: CLIENT_RANDOM for TLS 1.2, the handshake and
%% traffic secrets for TLS 1.3).
write_keylog(undefined, _Sock) ->
    ok;
write_keylog(Path, Sock) ->
    case ssl:connection_information(Sock, [keylog]) of
        {ok, Info} ->
            case proplists:get_value(keylog, Info) of
                undefined -> ok;
                Lines -> file:write_file(Path, [[L, $\n] || L <- Lines], [append])
            end;
        _ ->
            ok
    end.

%% A term as Erlang prints it, on one line (logger's single_line form, ~0tp).
one_line(Term) ->
    Text = lists:flatten(io_lib:format("~0tp", [Term])),
    [case C of $\n -> $\s; _ -> C end || C <- Text].

json_string(Text) ->
    [$" | lists:flatmap(fun json_char/1, Text)] ++ [$"].

json_char($") -> "\\\"";
json_char($\\) -> "\\\\";
json_char($\n) -> "\\n";
json_char($\r) -> "\\r";
json_char($\t) -> "\\t";
json_char(C) when C < 16#20 -> lists:flatten(io_lib:format("\\u~4.16.0B", [C]));
json_char(C) -> [C].

%% Halt once what io:format wrote has reached the file descriptors.
halt(Code) ->
    erlang:halt(Code, [{flush, true}]).
