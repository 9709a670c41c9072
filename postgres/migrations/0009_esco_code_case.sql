-- ESCO codes are compared case-insensitively everywhere (API scopes,
-- filters, the mediator's --esco): so must their uniqueness be, or a token
-- for "other" could read the meters of "OTHER". A database that already
-- holds two codes differing only in case cannot take the rule: say which,
-- and let an operator rename one (UPDATE flows.escos SET code = ...).
DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(codes, '; ') INTO clash FROM (
        SELECT string_agg(code, ', ' ORDER BY code) AS codes FROM flows.escos GROUP BY lower(code) HAVING count(*) > 1) x;
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'ESCO codes that differ only in case: %; rename all but one of each before upgrading', clash
            USING ERRCODE = 'unique_violation';
    END IF;
END $$;
CREATE UNIQUE INDEX escos_code_lower_key ON flows.escos (lower(code));
