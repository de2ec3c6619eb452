package dev.loraflow.serving.service;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A record that a request's JSON body is bound to, after the checks every body gets ({@link Requests#jsonObject}):
 * see {@link Requests#bind}. A string component given another JSON type is refused naming it; the record's
 * constructor checks the rest (required fields, ranges) and throws {@link ApiError}.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
public @interface JsonBody {}
